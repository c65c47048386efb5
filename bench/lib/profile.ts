// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by function,
// self time by package/file, and inclusive time of our own src/ functions. Percentages are of busy samples (idle excluded).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[] }

export interface ProfileRow { name: string, percent: number }
export interface ProfileSummary {
  busySamples: number
  idlePercent: number
  selfByFunction: ProfileRow[]
  selfByModule: ProfileRow[]
  inclusiveOurs: ProfileRow[]
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export function summarizeProfile (file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

  const self = new Map<string, number>()
  const modules = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let idle = 0
  let busy = 0
  for (const id of profile.samples) {
    const node = byId.get(id)
    if (!node) continue
    if (node.callFrame.functionName === '(idle)') { idle++; continue }
    busy++
    bump(self, functionLabel(node.callFrame))
    bump(modules, moduleLabel(node.callFrame))
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame
      if (!relative(frame.url).startsWith('src/')) continue
      const label = functionLabel(frame)
      if (!seen.has(label)) { seen.add(label); bump(inclusive, label) }
    }
  }
  const rows = (map: Map<string, number>): ProfileRow[] => [...map]
    .sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, n]) => ({ name, percent: 100 * n / Math.max(1, busy) }))
  return {
    busySamples: busy,
    idlePercent: 100 * idle / Math.max(1, idle + busy),
    selfByFunction: rows(self),
    selfByModule: rows(modules),
    inclusiveOurs: rows(inclusive)
  }
}

function bump (map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

function relative (url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : path
}

function functionLabel (frame: CallFrame): string {
  const where = relative(frame.url)
  const name = frame.functionName || '(anonymous)'
  if (where === '') return name
  return `${shortPath(where)}:${frame.lineNumber + 1} ${name}`
}

function shortPath (path: string): string {
  const nm = path.lastIndexOf('node_modules/')
  return nm === -1 ? path : path.slice(nm + 'node_modules/'.length)
}

/** src/<file>, bench/<file>, <package> for node_modules, node:<module> for Node's own, or (gc), (program)... */
function moduleLabel (frame: CallFrame): string {
  const where = relative(frame.url)
  if (where === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native/V8 builtins)'
  const nm = where.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = where.slice(nm + 'node_modules/'.length).split('/')
    return (rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]) as string
  }
  if (where.startsWith('node:')) return where.split('/').slice(0, 2).join('/')
  return where
}
