// Small statistics and formatting helpers.

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  if (sorted.length === 0) return NaN
  return sorted.length % 2 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)] as number
}

/** "1234 (1200–1300)": the median with the range over rounds. */
export function spread (values: number[], digits = 0, unit = ''): string {
  const f = (v: number): string => v.toFixed(digits)
  if (values.length <= 1) return `${f(median(values))}${unit}`
  return `${f(median(values))}${unit} (${f(Math.min(...values))}–${f(Math.max(...values))})`
}

export const MiB = 1024 * 1024

export function mib (bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`
}

/** A Markdown table; also readable as plain text. */
export function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(header), `|${widths.map(w => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}
