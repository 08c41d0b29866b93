/**
 * The Pareto front of a sweep's trials (lower validation loss, lower peak VRAM, less time per step) and its best
 * trial. Trials stopped at different rungs are compared at the deepest rung both reached: losses at equal steps.
 */

export interface TrialStanding {
  key: string;
  /** Validation loss at each rung the trial reached, in rung order. */
  val_losses: readonly (number | null)[];
  peak_vram_gib: number;
  step_seconds: number;
}

/** Whether `a` is at least as good as `b` everywhere and better somewhere; false when they share no scored rung. */
export function dominates(a: TrialStanding, b: TrialStanding): boolean {
  const common = Math.min(a.val_losses.length, b.val_losses.length) - 1;
  const lossA = a.val_losses[common];
  const lossB = b.val_losses[common];
  if (common < 0 || lossA == null || lossB == null) return false;
  const noWorse = lossA <= lossB && a.peak_vram_gib <= b.peak_vram_gib && a.step_seconds <= b.step_seconds;
  const better = lossA < lossB || a.peak_vram_gib < b.peak_vram_gib || a.step_seconds < b.step_seconds;
  return noWorse && better;
}

/** The trials no other trial dominates, in the order given. */
export const paretoFront = (standings: readonly TrialStanding[]): string[] =>
  standings.filter((candidate) => !standings.some((other) => other !== candidate && dominates(other, candidate))).map(({ key }) => key);

/** The trial with the lowest validation loss at the deepest rung any trial reached (ties: by key); null if none scored. */
export function bestTrial(standings: readonly TrialStanding[]): string | null {
  const deepest = Math.max(0, ...standings.map(({ val_losses }) => val_losses.length));
  const scored = standings.filter(({ val_losses }) => val_losses.length === deepest && val_losses[deepest - 1] != null);
  scored.sort((a, b) => a.val_losses[deepest - 1]! - b.val_losses[deepest - 1]! || (a.key < b.key ? -1 : 1));
  return scored[0]?.key ?? null;
}
