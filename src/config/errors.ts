// The one error every configuration layer throws: a bad file, variable, flag
// or value. Each issue names the field (or flag), where it came from and why.

export interface ConfigIssue {
  readonly field: string;
  readonly source: string;
  readonly reason: string;
}

export class ConfigError extends Error {
  readonly code = 'TURNPIKE_CONFIG';
  constructor(
    message: string,
    readonly issues: readonly ConfigIssue[] = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }

  /** `heading:` and one `  field (source): reason` line per issue. */
  static of(heading: string, issues: readonly ConfigIssue[]): ConfigError {
    const lines = issues.map((i) => `  ${i.field} (${i.source}): ${i.reason}`);
    return new ConfigError(`${heading}:\n${lines.join('\n')}`, issues);
  }
}
