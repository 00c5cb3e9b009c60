#!/usr/bin/env bash
# Issue 22's measurements on a GPU machine, as one prepared run (the `device` tool gives about 15 minutes).
#
#   bash benchmarks/gpu_check.sh [FRAMES] > gpu.jsonl
#
# Prints the GPU and driver, the CUDA tests, then one `vidsr bench --json` line per model, size and encoder:
# network alone (device-resident input), inference as the pipeline feeds it, end to end, and their ratios.
# The bar: end to end at 960x540 -> 1080p with NVENC at least 0.8x the network-alone fps (EDSR-baseline, VDSR).
set -u
FRAMES=${1:-96}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2
python -c "import torch, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'av', av.__version__)" >&2
python -m pytest -q -x tests/test_nvenc.py tests/test_device_colour.py >&2
for size in 960x540 1920x1080; do
  frames=$FRAMES; [ "$size" = 1920x1080 ] && frames=$((FRAMES / 2))
  for model in edsr-baseline-x2 vdsr mdsr; do
    for codec in h264_nvenc libx264; do
      timeout 300 vidsr bench --model "$model" --scale 2 --device cuda --size "$size" --frames "$frames" \
        --codec "$codec" --json || echo "{\"model\": \"$model\", \"size\": \"$size\", \"codec\": \"$codec\", \"failed\": $?}"
    done
    timeout 300 vidsr bench --model "$model" --scale 2 --device cuda --runtime torch-compile --size "$size" \
      --frames "$frames" --codec h264_nvenc --json || echo "{\"model\": \"$model\", \"runtime\": \"torch-compile\", \"failed\": $?}"
    [ "$size" = 960x540 ] && { timeout 300 vidsr bench --model "$model" --scale 2 --device cuda --size "$size" \
      --frames "$frames" --batch 4 --codec h264_nvenc --json || echo "{\"model\": \"$model\", \"batch\": 4, \"failed\": $?}"; }
  done
done
# The temporal filter that real and heavy engines run (its warps and blends on the device, its DIS flow on the
# host): end to end with and without it, to see whether it bounds the pace.
for filter in on off; do
  timeout 300 vidsr bench --model edsr-baseline-x2-heavy-luma --degradation heavy --scale 2 --device cuda \
    --size 1920x1080 --frames $((FRAMES / 2)) --codec h264_nvenc --temporal-filter "$filter" --json \
    || echo "{\"model\": \"edsr-baseline-x2-heavy-luma\", \"temporal_filter\": \"$filter\", \"failed\": $?}"
done
# The multi-frame engine: its state stays on the device, and its DIS flow is measured on the host each frame, so
# whether the host bounds the pace shows here (its tests on CUDA first: the device path against the host one).
python -m pytest -q -x tests/test_recurrent.py -k "device or streaming" >&2
timeout 300 vidsr bench --model rvsr-x2-heavy --scale 2 --device cuda --size 1920x1080 --frames $((FRAMES / 2)) \
  --codec h264_nvenc --temporal-filter off --json || echo "{\"model\": \"rvsr-x2-heavy\", \"failed\": $?}"
