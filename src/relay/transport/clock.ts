// The clock the server's lifetimes run on. Allocations, permissions, channels,
// pending Allocates and rate-limit buckets are durations, so they run on a
// monotonic clock: a wall-clock step (NTP, an operator, a VM restored from a
// snapshot) neither expires them early nor stretches them. Node's timers
// (the driver's setTimeout) are monotonic too. What carries absolute times
// (credential expiry, nonces) reads the wall clock, injected into the server
// separately (TurnServerOptions.wallClock).

/**
 * ms on a monotonic clock (performance.now()), offset by the wall time at the
 * call so that its readings look like dates (ChannelBinding.expiresAt in
 * logs); after a wall-clock step the two simply differ.
 */
export function monotonicClock(): () => number {
  const origin = Date.now() - performance.now();
  return () => origin + performance.now();
}
