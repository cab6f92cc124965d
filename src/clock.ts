/** Wall-clock source. Everything time-dependent takes one, so tests can move time. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

export const unixSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000)
