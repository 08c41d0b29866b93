export const bytesPerGib = 2 ** 30;

export function bytesToGib(bytes: number): number {
  return bytes / bytesPerGib;
}

/** Plans report three decimals: enough to compare against measurements, short enough to read. */
export function roundToThousandths(value: number): number {
  return Math.round(value * 1000) / 1000;
}
