// Public API of the sans-IO TURN server.
export type * from './types.ts';
export type { TurnServerOptions } from './options.ts';
export type { RandomSource } from './port-pool.ts';
export { TurnServer } from './server.ts';
export { MAX_DATAGRAM } from './relay-path.ts';
export { LEGACY_CHANNEL_MAX } from './channel-data.ts';
