#!/usr/bin/env bash
# The CPU runs behind the README's per-pair figures: default config, CPU-budget search, tuned config.
# Usage: search/bench/readme_runs.sh wine_mlp waveform_cnn tabular_widedeep tabular_dcn fashion_norm_cnn \
#          galspecnet_lora galspecnet_full galspecnet_head galspecnet_scratch minilm_lora_text
# (writes runs/<space>/{default,search,tuned}.log and .json; needs make install first).
set -u
cd "$(dirname "$0")/../.."
S=.venv/bin/spectune
URI=sqlite:///$PWD/mlflow.db
run_pair() {  # space, extra data args, default-train args
  local space=$1 data=$2 extra=$3
  mkdir -p runs/$space
  echo "=== $space $(date -u +%H:%M:%S)"
  /usr/bin/time -f "default train wall %e s" $S train --space $space $data $extra --threads 1 --device cpu --test \
    --json-out runs/$space/default.json > runs/$space/default.log 2>&1
  tail -3 runs/$space/default.log
  if [ -f results/$space/$space-cpu-s0/best.json ]; then
    echo "search $space-cpu-s0 already finished: reusing it"
  else
    /usr/bin/time -f "search wall %e s" $S search --space $space --budget cpu $data --seed 0 --name $space-cpu-s0 \
      --tracking-uri $URI > runs/$space/search.log 2>&1
    tail -4 runs/$space/search.log
  fi
  $S export --space $space --name $space-cpu-s0 --out runs/$space/best.json > /dev/null
  /usr/bin/time -f "tuned train wall %e s" $S train --config runs/$space/best.json $data --device cpu --test \
    --json-out runs/$space/tuned.json > runs/$space/tuned.log 2>&1
  tail -3 runs/$space/tuned.log
}
$S data --space tabular_widedeep --source shuttle --out data/shuttle --if-missing > /dev/null 2>&1 || \
  $S data --space tabular_widedeep --source shuttle --out data/shuttle
$S data --space waveform_cnn --if-missing
for space in "$@"; do
  case $space in
    wine_mlp) run_pair wine_mlp "" "" ;;
    waveform_cnn) run_pair waveform_cnn "" "" ;;
    tabular_widedeep|tabular_dcn) run_pair $space "--data data/shuttle" "--epochs 12" ;;
    fashion_norm_cnn) run_pair fashion_norm_cnn "" "--train-fraction 0.25 --epochs 8" ;;
    # The transfer pairs start from `make source`; both rows train at the CPU budget's scaling and epochs.
    galspecnet_lora|galspecnet_full|galspecnet_head|galspecnet_scratch)
      run_pair $space "--points 1024" "--epochs 30" ;;
    minilm_lora_text) run_pair minilm_lora_text "--points 64 --train-per-class 32" "--epochs 4" ;;
  esac
done
echo "=== done $(date -u +%H:%M:%S)"
