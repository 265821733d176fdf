// Public API of TURN authentication: credential sources (static users, coturn
// TURN REST secret, Firezone's scheme) behind one interface, and stateless
// signed nonces. Pure: time is always a parameter (ms since the epoch).
export type { CredentialSource, RestCredential } from './credentials.ts';
export {
  createStaticCredentials,
  createRestCredentials,
  createFirezoneCredentials,
  createCredentialChain,
  mintRestCredential,
  mintFirezoneCredential,
  restPassword,
  firezonePassword,
} from './credentials.ts';
export type { NonceVerdict, NonceOptions, NonceManager } from './nonce.ts';
export { issueNonce, verifyNonce, createNonceManager, MAX_NONCE_LENGTH } from './nonce.ts';
export { longTermKey } from '../stun/integrity.ts';
