"""Data: raw talking-head videos -> preprocessed segments (``preprocess``), motion labels, the training dataset."""
