# CI phases, timed: `phase NAME COMMAND [ARGS...]` runs the command, prints how long it took and appends
# "NAME<TAB>SECONDS<TAB>EXIT STATUS" to $TUNEFLOW_PHASE_LOG, where scripts/test.mjs's closing summary reads every
# phase (its own vitest and pytest phases too). Returns the command's exit status.
phase() {
  local name=$1
  shift
  local started status=0
  started=$(date +%s)
  "$@" || status=$?
  local seconds=$(($(date +%s) - started))
  printf '[phase] %s: %d min %02d s%s\n' "$name" $((seconds / 60)) $((seconds % 60)) "$([ "$status" -eq 0 ] || echo " (failed, exit $status)")"
  if [ -n "${TUNEFLOW_PHASE_LOG:-}" ]; then printf '%s\t%d\t%d\n' "$name" "$seconds" "$status" >>"$TUNEFLOW_PHASE_LOG"; fi
  return "$status"
}
