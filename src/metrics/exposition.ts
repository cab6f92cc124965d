/**
 * Counters, gauges and histograms, and the Prometheus text format they are scraped in
 * (README "Metrics"). A labelled series is bound once, up front or on first use, and then only
 * adds to numbers: the request path never allocates.
 */

export type Labels = Readonly<Record<string, string>>

export interface MetricFamily {
  /** The family's lines in the text exposition format, HELP and TYPE first. */
  write(lines: string[]): void
}

/** A label value as the text format quotes it: backslash, double quote and line feed escaped. */
const escapeLabelValue = (value: string): string => value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))

export function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
  return pairs.length ? `{${pairs.join(',')}}` : ''
}

/** Adds one label to an already rendered `{…}` (or empty) label text. */
const withLabel = (text: string, pair: string): string => (text ? `${text.slice(0, -1)},${pair}}` : `{${pair}}`)

const formatValue = (value: number): string =>
  Number.isFinite(value) ? String(value) : Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf'

function header(lines: string[], name: string, help: string, type: string): void {
  lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`)
}

export class Counter {
  value = 0
  constructor(readonly labels: string) {}
  inc(by = 1): void {
    this.value += by
  }
}

/** A counter family; `series(labels)` returns the same Counter for the same labels, so callers bind it once. */
export class CounterFamily implements MetricFamily {
  private readonly children = new Map<string, Counter>()
  constructor(
    readonly name: string,
    private readonly help: string,
  ) {}

  series(labels: Labels = {}): Counter {
    const text = labelText(labels)
    let counter = this.children.get(text)
    if (!counter) this.children.set(text, (counter = new Counter(text)))
    return counter
  }

  write(lines: string[]): void {
    header(lines, this.name, this.help, 'counter')
    for (const counter of this.children.values()) lines.push(`${this.name}${counter.labels} ${formatValue(counter.value)}`)
  }
}

/**
 * A gauge or counter read when scraped: `read` returns its value or its labelled series, so live
 * state is never copied on the request path.
 */
export class CollectedFamily implements MetricFamily {
  constructor(
    readonly name: string,
    private readonly type: 'gauge' | 'counter',
    private readonly help: string,
    private readonly read: () => Iterable<readonly [Labels, number]> | number,
  ) {}

  write(lines: string[]): void {
    header(lines, this.name, this.help, this.type)
    let values: ReturnType<typeof this.read>
    try {
      values = this.read()
    } catch {
      // A source that fails (the database, locked or gone) leaves its series out; the rest is still served.
      return
    }
    if (typeof values === 'number') lines.push(`${this.name} ${formatValue(values)}`)
    else for (const [labels, value] of values) lines.push(`${this.name}${labelText(labels)} ${formatValue(value)}`)
  }
}

export class Histogram {
  /** Per bucket, not cumulative: observe() touches one slot; the exposition adds them up. */
  private readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(
    readonly labels: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    const { bounds } = this
    this.sum += value
    this.count++
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++
        return
      }
    }
  }

  write(lines: string[], name: string): void {
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!
      lines.push(`${name}_bucket${withLabel(this.labels, `le="${this.bounds[i]}"`)} ${cumulative}`)
    }
    lines.push(`${name}_bucket${withLabel(this.labels, 'le="+Inf"')} ${this.count}`)
    lines.push(`${name}_sum${this.labels} ${formatValue(this.sum)}`, `${name}_count${this.labels} ${this.count}`)
  }
}

export class HistogramFamily implements MetricFamily {
  private readonly children = new Map<string, Histogram>()
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  series(labels: Labels = {}): Histogram {
    const text = labelText(labels)
    let histogram = this.children.get(text)
    if (!histogram) this.children.set(text, (histogram = new Histogram(text, this.bounds)))
    return histogram
  }

  write(lines: string[]): void {
    header(lines, this.name, this.help, 'histogram')
    for (const histogram of this.children.values()) histogram.write(lines, this.name)
  }
}

/** The text exposition format's content type (version 0.0.4). */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function exposition(families: readonly MetricFamily[]): string {
  const lines: string[] = []
  for (const family of families) family.write(lines)
  return `${lines.join('\n')}\n`
}
