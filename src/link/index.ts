// The local link between sidecar and relay: wire format, framing and the two
// socket ends. See protocol.ts for the frame table.
export * from './protocol.ts';
export { MAX_REASON_KEYS, MAX_REASON_KEY_CHARS, countersProblem, parseCounters, type LogCounters, type RelayCounters, type TransportCounters } from './counters.ts';
export { FrameReader, type FrameReaderHandlers } from './reader.ts';
export { FrameWriter, type ByteSink, type FrameWriterOptions, type WriterStats } from './writer.ts';
export { LinkConnection, type Hello, type LinkCloseInfo, type LinkConnectionOptions, type LinkStats } from './connection.ts';
export { LinkServer, LinkServerError, type LinkServerOptions } from './server.ts';
export { LinkClient, backoffDelay, type BackoffOptions, type LinkClientOptions } from './client.ts';
