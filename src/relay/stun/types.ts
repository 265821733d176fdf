// Decoded and to-be-encoded STUN/TURN messages. Attributes are typed fields,
// not a list: the server reads `attributes.lifetime`, never walks TLVs.
import type { StunClass } from './constants.ts';
// Drop reasons are metric labels: declared, with their meanings, beside the others.
import type { ChannelDataDropReason, StunDropReason } from '../../shared/reasons.ts';

export type { ChannelDataDropReason, StunDropReason };

export type Family = 4 | 6;

/**
 * An IP transport address, structurally the same as the server's
 * TransportAddress (src/relay/server/types.ts) so one passes for the other.
 * `address` is canonical text: dotted quad, or RFC 5952 IPv6 (lowercase,
 * longest zero run compressed, IPv4-mapped shown as ::ffff:a.b.c.d).
 */
export interface StunAddress {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
}

export interface ErrorCodeValue {
  readonly code: number; // 300-699
  readonly reason: string;
}

export interface AddressErrorCodeValue extends ErrorCodeValue {
  readonly family: Family;
}

/**
 * A family requested by REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY.
 * 'unsupported' = a well-formed attribute naming a family we do not know
 * (the server answers 440 Address Family not Supported, RFC 8656 §7.2).
 */
export type RequestedFamily = Family | 'unsupported';

/**
 * Every attribute the codec knows. Decoding fills only the ones present;
 * for a repeated attribute the first one wins except where noted (later
 * ones are skipped unread, so a malformed repeat is not an error).
 * Byte fields (data, reservationToken, ...) are views into the datagram
 * (no copy): do not mutate or reuse the input buffer while the message is in use.
 */
export interface StunAttributes {
  mappedAddress?: StunAddress;
  xorMappedAddress?: StunAddress;
  /** Every XOR-RELAYED-ADDRESS (a dual-stack allocation's success response carries two). */
  xorRelayedAddress?: StunAddress[];
  /** Every XOR-PEER-ADDRESS, in order (CreatePermission may carry several). */
  xorPeerAddress?: StunAddress[];
  alternateServer?: StunAddress;
  username?: string;
  realm?: string;
  nonce?: string;
  software?: string;
  errorCode?: ErrorCodeValue;
  unknownAttributes?: number[];
  /** Seconds. */
  lifetime?: number;
  /** IP protocol number (17 = UDP). */
  requestedTransport?: number;
  requestedAddressFamily?: RequestedFamily;
  additionalAddressFamily?: RequestedFamily;
  addressErrorCode?: AddressErrorCodeValue;
  channelNumber?: number;
  data?: Uint8Array;
  dontFragment?: boolean;
  evenPort?: { readonly reserve: boolean };
  /** 8 bytes. */
  reservationToken?: Uint8Array;
  /** ICE (RFC 8445): decoded for Binding requests; a relay ignores them. */
  priority?: number;
  useCandidate?: boolean;
  iceControlled?: bigint;
  iceControlling?: bigint;
  /** Known-but-ignored RFC 8489 attributes: raw values, kept only so a caller can tell they were sent. */
  passwordAlgorithm?: Uint8Array;
  passwordAlgorithms?: Uint8Array;
  userhash?: Uint8Array;
}

/** What encodeMessage needs. A decoded StunMessage is also a valid init. */
export interface StunMessageInit {
  readonly method: number;
  readonly cls: StunClass;
  /** 12 bytes. */
  readonly transactionId: Uint8Array;
  readonly attributes: StunAttributes;
}

/**
 * Where the integrity attributes were found, so verifyIntegrity can recompute
 * the HMAC over the original bytes once the caller knows the key.
 */
export interface IntegrityLocation {
  /** The whole datagram (a view, not a copy). */
  readonly raw: Uint8Array;
  /** Offset of the MESSAGE-INTEGRITY attribute header, if present. */
  readonly sha1?: number;
  /** Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, if present. */
  readonly sha256?: number;
  /** Length of the MESSAGE-INTEGRITY-SHA256 value (16-32, multiple of 4). */
  readonly sha256Length?: number;
}

export interface StunMessage extends StunMessageInit {
  /** undefined when the message carries neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256. */
  readonly integrity: IntegrityLocation | undefined;
  /** True when a FINGERPRINT was present (and, since decode succeeded, correct). */
  readonly hasFingerprint: boolean;
}

export type DecodeResult =
  | { readonly kind: 'message'; readonly message: StunMessage }
  /**
   * A parseable request the server must answer with an error response:
   * 420 (unknownAttributes lists the comprehension-required types we do not
   * know: the first MAX_UNKNOWN_ATTRIBUTES distinct ones, in order) or 400
   * (a known attribute is malformed). Only requests yield this;
   * indications and responses with the same faults are dropped.
   */
  | {
      readonly kind: 'reply-error';
      readonly code: 400 | 420;
      readonly reason: string;
      readonly method: number;
      readonly transactionId: Uint8Array;
      readonly unknownAttributes?: number[];
      /** Which attribute was malformed (for a 400), e.g. 'xor-peer-address'. */
      readonly detail?: string;
    }
  | { readonly kind: 'drop'; readonly reason: StunDropReason };

export type IntegrityAlgorithm = 'sha1' | 'sha256';

export interface EncodeOptions {
  /** Long-term (MD5) or short-term key; required for integrity. */
  readonly key?: Uint8Array;
  /** Which MESSAGE-INTEGRITY attribute(s) to add; default 'sha1' when a key is given. */
  readonly integrity?: IntegrityAlgorithm | 'both';
  /** Append FINGERPRINT (default false). */
  readonly fingerprint?: boolean;
  /** Byte value used to pad attributes to 4 bytes (default 0; RFC 5769 vectors use 0x20). */
  readonly padding?: number;
}

export type ChannelDataResult =
  /** `data` is a view into the datagram (no copy). */
  | { readonly kind: 'channel-data'; readonly channel: number; readonly data: Uint8Array }
  | { readonly kind: 'drop'; readonly reason: ChannelDataDropReason };

export type DatagramKind = 'stun' | 'channel-data' | 'other';
