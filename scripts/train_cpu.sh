#!/usr/bin/env bash
# Train the nets in turns, a slice of minutes each, so all of them make progress while the data
# generator keeps adding samples. Every slice resumes its net's checkpoint; run it again after a
# stop and it carries on. Usage: scripts/train_cpu.sh DATA_DIR RUN_DIR [MINUTES_PER_SLICE]
#   e.g. nohup setsid nice -n 10 scripts/train_cpu.sh /work/cache/psc-data/train /work/cache/psc-runs 10 &
set -u
data=${1:?data folder}; runs=${2:?run folder}; slice=${3:-10}
py=${PYTHON:-python}
# net:steps:size:batch -- the cheaper 128x128 stage first (4x fewer pixels, ~8x faster per step here;
# the photo nets read photos and train at 256 only);
# PLAN="..." in the environment replaces it (e.g. only the PSC nets).
# ARGS_<net>="..." adds options to that net's runs; the defaults are the recipe the shipped
# weights were trained with: a moving average of the weights for AA and CT, and CT's SSIM term
# weighted 3 (see weights/README.md). ARGS_ct="" turns them off.
ARGS_aa=${ARGS_aa---ema 0.999}
ARGS_ct=${ARGS_ct---ema 0.999 --ssim_weight 3}
plan=${PLAN:-"aa:4000:128:4 ct:4000:128:4 pm:3000:128:4 aa:6000:256:4 ct:6000:256:2 pose:4000:256:8 parsing:3000:256:8"}
while true; do
  progress=0
  for item in $plan; do
    IFS=: read -r net steps size batch <<<"$item"
    out="$runs/$size"
    done_steps=$($py -c "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)['step'])" "$out/$net/checkpoint.pt" 2>/dev/null || echo 0)
    [ "$done_steps" -ge "$steps" ] && continue
    init=""
    if [ ! -f "$out/$net/checkpoint.pt" ] && [ "$size" = 256 ] && [ -f "$runs/128/$net/checkpoint.pt" ]; then
      # the 256 stage of a net starts once its 128 stage has finished, from those weights
      first=$(grep -o "$net:[0-9]*:128" <<<"$plan" | cut -d: -f2)
      at=$($py -c "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)['step'])" "$runs/128/$net/checkpoint.pt")
      [ "$at" -lt "$first" ] && continue
      init="--init $runs/128/$net/weights"
    fi
    resume=""; [ -f "$out/$net/checkpoint.pt" ] && resume="--resume"
    extra_var="ARGS_$net"; extra=${!extra_var:-}
    echo "$(date '+%F %T') $net @${size}: step $done_steps/$steps, slice $slice min"
    $py -m psc_engine train --data_dir "$data" --model "$net" --out "$out" --steps "$steps" --size "$size" \
        --batch "$batch" --minutes "$slice" --checkpoint_minutes 5 $resume $init $extra --quiet || exit 1
    progress=1
  done
  [ "$progress" = 0 ] && { echo "all nets at their steps"; break; }
done
