"""Sonic demo: animate a portrait with speech, from the command line or in the browser.

    python sonic_demo.py --image examples/portrait.jpg --audio examples/speech.wav --output out.mp4 --motion moderate
    python sonic_demo.py --batch jobs.csv --output-dir outputs        # CSV header: image,audio[,output]
    python sonic_demo.py --image-dir faces --audio-dir speech --output-dir outputs
    python sonic_demo.py --gradio                                     # http://127.0.0.1:7860
    torchrun --nproc_per_node 4 sonic_demo.py --image ... --audio ...  # 4 GPUs share one video (docs/inference.md)

Offline try-out on random tiny weights: ``python -m sonic.cli.tiny checkpoints-tiny`` then ``--checkpoint
checkpoints-tiny --resolution 64 --steps 2``. ``--help`` lists every option; the logic lives in :mod:`sonic.cli.demo`.
"""

from sonic.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
