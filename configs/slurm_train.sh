#!/usr/bin/env bash
# Sonic training on several nodes under SLURM: one accelerate launcher per node, 8 GPUs each.
#   sbatch --nodes 4 configs/slurm_train.sh configs/train_full.yaml
# DATA_ROOT and output_dir of the YAML must be on storage every node sees (a shared file system): the latent cache
# and the checkpoints are written there; resume with --resume_from_checkpoint latest and the same number of GPUs.
#SBATCH --job-name=sonic-train
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
set -euo pipefail
CONFIG=${1:?usage: sbatch --nodes N configs/slurm_train.sh TRAIN.yaml [more sonic_training.py flags]}
shift
MAIN=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c "accelerate launch --multi_gpu --num_machines $SLURM_NNODES --num_processes $((SLURM_NNODES * 8)) \
    --machine_rank \$SLURM_NODEID --main_process_ip $MAIN --main_process_port 29500 --mixed_precision bf16 \
    sonic_training.py --config $CONFIG $*"
