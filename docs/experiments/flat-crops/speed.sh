# Steps per second of DDP and of local SGD (--sync-every) from the same weights, the trainer stopped;
# each run writes runs/speed-ls/NAME/train_log.csv (steps/s between rows from its wall column).
set -e
common="--init runs/gab/soup.pt --steps 100000 --lr 1e-4 --crop 256 --sigma-start 3 --sigma-end 10 --ema-decay 0.999 --flat-crop-activity 12 --level-balance --colour-augment --threads 2 --no-progress --stop-after 150 --val-every 100000 --ckpt-every 150"
export OMP_NUM_THREADS=1 LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
torchrun --standalone --nproc_per_node 2 scripts/train.py --run-dir runs/speed-ls/ddp-b1 --batch-size 1 $common
torchrun --standalone --nproc_per_node 2 scripts/train.py --run-dir runs/speed-ls/local-b1 --batch-size 1 --sync-every 50 $common
torchrun --standalone --nproc_per_node 2 scripts/train.py --run-dir runs/speed-ls/local-b2 --batch-size 2 --sync-every 50 $common
