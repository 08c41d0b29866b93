/**
 * The exit codes of every `tuneflow` command, documented in docs/cli.md and in `tuneflow --help`. A script can
 * tell "the answer is no" (1) from "the question was wrong" (2) from "nothing to ask" (3, 4).
 */
export const ExitCode = {
  /** Done: the run completed, the plan fits, the dataset is prepared, the service stopped when asked. */
  Ok: 0,
  /** The answer is no: the run failed or was cancelled, the plan does not fit, the dataset cannot be trained on. */
  Unsuccessful: 1,
  /** The input is wrong: an unknown option, an invalid spec, a missing file. */
  InvalidInput: 2,
  /** No run has that id. */
  RunNotFound: 3,
  /** No Temporal server answers at TEMPORAL_ADDRESS. */
  ServerUnreachable: 4,
  /** Something tuneflow did not expect (a bug): `--verbose` prints the stack trace. */
  Internal: 5,
  /** Ctrl-C while following a run: the run itself goes on. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const exitCodeHelp = `
Exit codes:
  0    done (run completed, plan fits, dataset prepared, service stopped on request)
  1    the answer is no (run failed or cancelled, plan does not fit, dataset unusable)
  2    the input is wrong (unknown option, invalid spec, missing file)
  3    no run has that id
  4    no Temporal server at TEMPORAL_ADDRESS
  5    unexpected error (a bug; --verbose prints the stack trace)
  130  interrupted while following a run (the run goes on)`;
