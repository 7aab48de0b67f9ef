#!/usr/bin/env bash
# Submit the nightly job to a running Ray cluster (ray up cluster.yaml, or KubeRay's RayCluster)
# and wait for it. The exit code is the job's own: 0 all ok, 1 some items failed, 2 nothing run
# (`ray job submit` alone says only 0 or 1, so the driver's exit code is asked for afterwards).
#   RAY_ADDRESS=http://HEAD:8265 LIBRARY='s3://studio/assets/**/*.png' STYLES='s3://studio/styles/ink.png' \
#   OUTPUT_ROOT=s3://studio/stylized BATCH_NST_WEIGHTS=s3://studio/models/vgg19_notop.h5 jobs/submit-nightly.sh
# WORKERS (default 8, cluster.yaml's max_workers) GPU workers of GPUS_PER_WORKER (default 1) are
# asked for at once, so the autoscaler grows the cluster from zero; extra arguments go to `batch-nst run`.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LIBRARY:?set LIBRARY to the assets glob}" "${STYLES:?set STYLES (space-separated URIs)}"
: "${OUTPUT_ROOT:?set OUTPUT_ROOT}" "${BATCH_NST_WEIGHTS:=imagenet}" "${WORKERS:=8}" "${GPUS_PER_WORKER:=1}"
style_flags=()
for s in $STYLES; do style_flags+=(--style "$s"); done
submission_id="batch-nst-nightly-$(date -u +%Y%m%dT%H%M%SZ)-$$"

ray job submit \
  --submission-id "$submission_id" \
  --working-dir . \
  --runtime-env-json "{\"env_vars\": {\"BATCH_NST_WEIGHTS\": \"${BATCH_NST_WEIGHTS}\", \"TF_CPP_MIN_LOG_LEVEL\": \"2\"}}" \
  -- python jobs/nightly.py --library "$LIBRARY" "${style_flags[@]}" --output-root "$OUTPUT_ROOT" \
  --workers "$WORKERS" --gpus-per-worker "$GPUS_PER_WORKER" "$@" || true
exec python - "$submission_id" <<'PY'
import sys
from ray.job_submission import JobSubmissionClient  # RAY_ADDRESS: the dashboard, as for the submit

try:
    info = JobSubmissionClient().get_job_info(sys.argv[1])
except RuntimeError as err:  # never created (the cluster refused it): `ray job submit` said why above
    print(f"job {sys.argv[1]} was not created, nothing run: {err}", file=sys.stderr)
    sys.exit(2)
print(f"job {sys.argv[1]}: {info.status}, exit code {info.driver_exit_code}", file=sys.stderr)
sys.exit(2 if info.driver_exit_code is None else info.driver_exit_code)  # never started: nothing run
PY
