// Security events: a refusal of something the relay, a process on the link
// socket or an admin client was not allowed to do. Each is logged in one
// shape (event 'security', rule, detail) that operators can alert on, and
// counted by rule (GET /status, and the turnpike.security.refusals metric).
import type { Logger } from 'pino';

export type SecurityRule =
  /** A process other than the relay's user connected to the link socket. */
  | 'link-peer'
  /** The relay named an allocation port outside the configured range. */
  | 'port-range'
  /** The relay sent from a port that is neither the listen port nor in the range. */
  | 'port-not-held'
  /** The relay asked for a peer the peer policy denies. */
  | 'peer-policy'
  /** The relay sent more control frames than the configured rate allows. */
  | 'control-rate'
  /** A state-changing admin request without the right token. */
  | 'admin-token'
  /** An admin request whose Host header names another host (DNS rebinding, CSRF). */
  | 'admin-host';

export interface SecurityRefusal {
  readonly rule: SecurityRule;
  readonly detail: string;
}

export class SecurityEvents {
  private readonly counts: Partial<Record<SecurityRule, number>> = {};

  constructor(
    private readonly log: Logger,
    /** Called once per refusal (the sidecar counts it in metrics). */
    private readonly onRefusal?: (rule: SecurityRule) => void,
  ) {}

  /** Logs and counts one refusal; `fields` add context but never replace event, rule or detail. */
  refuse(r: SecurityRefusal, fields: Record<string, unknown> = {}, level: 'warn' | 'error' = 'error'): void {
    this.counts[r.rule] = (this.counts[r.rule] ?? 0) + 1;
    this.log[level]({ ...fields, event: 'security', rule: r.rule, detail: r.detail }, `security: ${r.detail}`);
    this.onRefusal?.(r.rule);
  }

  /** Refusals so far, by rule. */
  stats(): Partial<Record<SecurityRule, number>> {
    return { ...this.counts };
  }
}
