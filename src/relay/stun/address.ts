/** Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6; ::ffff:a.b.c.d for IPv4-mapped). */
export function formatAddress(bytes: Uint8Array): string {
  void bytes;
  throw new Error('TODO');
}

/** 4 bytes for an IPv4 text, 16 for IPv6; undefined when not an address. */
export function addressToBytes(text: string): Uint8Array | undefined {
  void text;
  throw new Error('TODO');
}

/** Hex of a 12-byte transaction id, for use as a Map key. */
export function transactionIdKey(id: Uint8Array): string {
  void id;
  throw new Error('TODO');
}
