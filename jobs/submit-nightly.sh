#!/usr/bin/env bash
# Submit the nightly job to a running Ray cluster (ray up cluster.yaml, or KubeRay's RayCluster).
# The exit code is the job's: 0 all ok, 1 some items failed, 2 nothing run.
#   RAY_ADDRESS=http://HEAD:8265 LIBRARY='s3://studio/assets/**/*.png' STYLES='s3://studio/styles/ink.png' \
#   OUTPUT_ROOT=s3://studio/stylized BATCH_NST_WEIGHTS=s3://studio/models/vgg19_notop.h5 jobs/submit-nightly.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIBRARY:?set LIBRARY to the assets glob}" "${STYLES:?set STYLES (space-separated URIs)}"
: "${OUTPUT_ROOT:?set OUTPUT_ROOT}" "${BATCH_NST_WEIGHTS:=imagenet}"
style_flags=()
for s in $STYLES; do style_flags+=(--style "$s"); done

exec ray job submit \
  --working-dir . \
  --runtime-env-json "{\"env_vars\": {\"BATCH_NST_WEIGHTS\": \"${BATCH_NST_WEIGHTS}\", \"TF_CPP_MIN_LOG_LEVEL\": \"2\"}}" \
  -- python jobs/nightly.py --library "$LIBRARY" "${style_flags[@]}" --output-root "$OUTPUT_ROOT" "$@"
