// Wire constants of STUN (RFC 8489) and TURN (RFC 8656), plus the ICE
// attributes (RFC 8445) a Binding request may carry. Numbers only: no logic.

export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_LENGTH = 20;
export const TRANSACTION_ID_LENGTH = 12;
/** XORed into the CRC-32 of FINGERPRINT (RFC 8489 §14.7): "STUN" in ASCII. */
export const FINGERPRINT_XOR = 0x5354554e;

export const METHOD = {
  BINDING: 0x001,
  ALLOCATE: 0x003,
  REFRESH: 0x004,
  SEND: 0x006,
  DATA: 0x007,
  CREATE_PERMISSION: 0x008,
  CHANNEL_BIND: 0x009,
} as const;

export const METHOD_NAMES: Readonly<Record<number, string>> = {
  [METHOD.BINDING]: 'binding',
  [METHOD.ALLOCATE]: 'allocate',
  [METHOD.REFRESH]: 'refresh',
  [METHOD.SEND]: 'send',
  [METHOD.DATA]: 'data',
  [METHOD.CREATE_PERMISSION]: 'create-permission',
  [METHOD.CHANNEL_BIND]: 'channel-bind',
};

/** Low-cardinality name for a method number (unknown methods share one label). */
export function methodName(method: number): string {
  return METHOD_NAMES[method] ?? 'unknown';
}

export type StunClass = 'request' | 'indication' | 'success' | 'error';

export const ATTR = {
  // RFC 8489
  MAPPED_ADDRESS: 0x0001,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  PASSWORD_ALGORITHM: 0x001d,
  USERHASH: 0x001e,
  XOR_MAPPED_ADDRESS: 0x0020,
  PASSWORD_ALGORITHMS: 0x8002,
  ALTERNATE_DOMAIN: 0x8003,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
  // RFC 8656
  CHANNEL_NUMBER: 0x000c,
  LIFETIME: 0x000d,
  XOR_PEER_ADDRESS: 0x0012,
  DATA: 0x0013,
  XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_ADDRESS_FAMILY: 0x0017,
  EVEN_PORT: 0x0018,
  REQUESTED_TRANSPORT: 0x0019,
  DONT_FRAGMENT: 0x001a,
  RESERVATION_TOKEN: 0x0022,
  ADDITIONAL_ADDRESS_FAMILY: 0x8000,
  ADDRESS_ERROR_CODE: 0x8001,
  ICMP: 0x8004,
  // RFC 8445 (ICE): decoded so a connectivity-check Binding request is not
  // answered with 420 (PRIORITY and USE-CANDIDATE are comprehension-required).
  PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
} as const;

/** REQUESTED-TRANSPORT protocol number for UDP, the only one we relay. */
export const TRANSPORT_UDP = 17;

/** Address family codes inside address attributes and REQUESTED-ADDRESS-FAMILY. */
export const FAMILY_CODE = { IPV4: 0x01, IPV6: 0x02 } as const;

/** Reason phrases for every error code the server sends (RFC 8489 §14.8, RFC 8656 §18). */
export const ERROR_REASONS: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  420: 'Unknown Attribute',
  437: 'Allocation Mismatch',
  438: 'Stale Nonce',
  440: 'Address Family not Supported',
  441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol',
  443: 'Peer Address Family Mismatch',
  446: 'Connection Already Exists',
  447: 'Connection Timeout or Failure',
  486: 'Allocation Quota Reached',
  487: 'Role Conflict',
  500: 'Server Error',
  508: 'Insufficient Capacity',
};

export const ERROR = {
  TRY_ALTERNATE: 300,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  UNKNOWN_ATTRIBUTE: 420,
  ALLOCATION_MISMATCH: 437,
  STALE_NONCE: 438,
  ADDRESS_FAMILY_NOT_SUPPORTED: 440,
  WRONG_CREDENTIALS: 441,
  UNSUPPORTED_TRANSPORT: 442,
  PEER_ADDRESS_FAMILY_MISMATCH: 443,
  CONNECTION_ALREADY_EXISTS: 446,
  CONNECTION_TIMEOUT: 447,
  ALLOCATION_QUOTA_REACHED: 486,
  ROLE_CONFLICT: 487,
  SERVER_ERROR: 500,
  INSUFFICIENT_CAPACITY: 508,
} as const;

/** The standard reason phrase for `code` ("Error" for codes we never send). */
export function errorReason(code: number): string {
  return ERROR_REASONS[code] ?? 'Error';
}

/** Channel numbers a client may bind (RFC 8656 §12). */
export const CHANNEL_MIN = 0x4000;
export const CHANNEL_MAX = 0x4fff;

/** Longest REALM, NONCE, SOFTWARE and ERROR-CODE reason in bytes (RFC 8489: < 128 chars, <= 763 bytes). */
export const MAX_TEXT_BYTES = 763;
/** Longest USERNAME in bytes (RFC 8489 §14.3). */
export const MAX_USERNAME_BYTES = 513;

/**
 * Most types a 420's UNKNOWN-ATTRIBUTES lists: the first this many distinct
 * unknown comprehension-required types, in order of appearance. A protocol
 * constant, not a tunable: RFC 8489 §6.3.4 has the client declare the
 * transaction failed on any 4xx, the list being "additional information", so
 * a prefix loses nothing a client acts on; a legitimate request carries a
 * handful at most, while a 64 KiB datagram can carry 16k distinct ones and
 * would otherwise get a 32 KiB answer sent to a possibly forged source.
 */
export const MAX_UNKNOWN_ATTRIBUTES = 16;
