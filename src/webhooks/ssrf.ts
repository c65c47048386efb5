// Where a webhook may be sent: https only (plain http to loopback when WEBHOOK_ALLOW_LOOPBACK=true, for
// tests), and never to an address inside the service's networks: private, loopback, link-local (Azure's
// instance metadata service is 169.254.169.254), unique-local, CGNAT, multicast, reserved, nor IPv4
// embedded in IPv6 (mapped, NAT64, 6to4) that is one of those. Checked when an endpoint is created or
// changed, and again before each attempt (DNS can change); the attempt then connects to the address
// checked (see delivery.ts), so a name rebinding between the check and the connection cannot win.
import { BlockList, isIP } from 'node:net'
import { lookup } from 'node:dns/promises'

export interface ResolvedAddress {
  address: string
  family: 4 | 6
}

/** All the addresses of a host name (production: dns.lookup with all: true); injectable for tests. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>

export const systemResolver: Resolver = async (hostname) => {
  const found = await lookup(hostname, { all: true, verbatim: true })
  return found.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }))
}

export const MAX_URL_LENGTH = 2048

/** Why a URL is refused, as a stable word (extensions.reason). */
export type RefusalReason =
  | 'malformed' | 'too_long' | 'scheme' | 'credentials' | 'unresolvable' | 'private_address' | 'loopback' | 'not_loopback_http'

export class UrlRefused extends Error {
  readonly reason: RefusalReason
  constructor (reason: RefusalReason, message: string) {
    super(message)
    this.reason = reason
  }
}

const BLOCKED_V4 = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['169.254.0.0', 16], // link-local: cloud metadata (Azure IMDS)
  ['168.63.129.16', 32], // Azure's WireServer / platform DNS: reachable from every Azure VM, never a receiver
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4] // reserved, broadcast
] as const) BLOCKED_V4.addSubnet(net, prefix, 'ipv4')
const LOOPBACK_V4 = new BlockList()
LOOPBACK_V4.addSubnet('127.0.0.0', 8, 'ipv4')

const BLOCKED_V6 = new BlockList()
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID...)
  ['64:ff9b:1::', 48], // local-use NAT64: translates to whatever the local network holds
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8] // multicast
] as const) BLOCKED_V6.addSubnet(net, prefix, 'ipv6')

/** 'ok', 'loopback' or 'blocked' for one address. */
export function classifyAddress (address: string): 'ok' | 'loopback' | 'blocked' {
  const family = isIP(address)
  if (family === 4) {
    if (LOOPBACK_V4.check(address, 'ipv4')) return 'loopback'
    return BLOCKED_V4.check(address, 'ipv4') ? 'blocked' : 'ok'
  }
  if (family !== 6) return 'blocked'
  const groups = expandV6(address)
  if (groups === null) return 'blocked'
  if (groups.slice(0, 7).every(g => g === 0) && groups[7] === 1) return 'loopback' // ::1
  // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96), 6to4 (2002::/16).
  const v4 = embeddedV4(groups)
  if (v4 !== null) return classifyAddress(v4)
  return BLOCKED_V6.check(address, 'ipv6') ? 'blocked' : 'ok'
}

function expandV6 (address: string): number[] | null {
  let text = address.toLowerCase()
  const zone = text.indexOf('%')
  if (zone !== -1) text = text.slice(0, zone)
  // A dotted IPv4 tail becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted !== null) {
    const parts = dotted[1]!.split('.').map(Number)
    text = text.slice(0, dotted.index) + `${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const fill = tail === undefined ? 0 : 8 - left.length - right.length
  if (fill < 0) return null
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right].map(g => parseInt(g, 16))
  return groups.length === 8 && groups.every(g => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null
}

function embeddedV4 (g: number[]): string | null {
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every(x => x === 0)
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!) // ::ffff:a.b.c.d
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6]!, g[7]!) // ::ffff:0:a.b.c.d (SIIT)
  if (zeros(0, 6) && (g[6] !== 0 || g[7]! > 1)) return v4(g[6]!, g[7]!) // ::a.b.c.d (deprecated)
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!) // NAT64
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!) // 6to4
  return null
}

export interface CheckedUrl {
  url: URL
  /** The host name as in the URL (for the Host header and TLS SNI); brackets removed from IPv6 literals. */
  host: string
  /** Where to connect: an address that passed the check (the first of `addresses`). */
  address: ResolvedAddress
  /** Every address the name resolved to, all checked: the connection may fall back among them (IPv6 then IPv4...). */
  addresses: ResolvedAddress[]
}

/** Parses and checks a URL's form only (no DNS): scheme, length, credentials. */
export function parseEndpointUrl (text: string, allowLoopback: boolean): URL {
  if (text.length > MAX_URL_LENGTH) throw new UrlRefused('too_long', `The URL is longer than ${MAX_URL_LENGTH} characters.`)
  const url = URL.parse(text)
  if (url === null || url.hostname === '') throw new UrlRefused('malformed', 'The URL is not a valid absolute URL.')
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowLoopback)) {
    throw new UrlRefused('scheme', 'A webhook URL must be https://.')
  }
  if (url.username !== '' || url.password !== '') {
    throw new UrlRefused('credentials', 'A webhook URL must not carry a user name or password: the signature authenticates the calls.')
  }
  return url
}

/**
 * The URL checked, with the address to connect to. Every address the name resolves to must be allowed (an
 * attacker's name may resolve to a public and a private one). Throws UrlRefused.
 */
export async function checkEndpointUrl (
  text: string, { allowLoopback, resolve }: { allowLoopback: boolean, resolve: Resolver }
): Promise<CheckedUrl> {
  const url = parseEndpointUrl(text, allowLoopback)
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  let addresses: ResolvedAddress[]
  if (isIP(host) !== 0) {
    addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }]
  } else {
    try {
      addresses = await resolve(host)
    } catch {
      addresses = []
    }
    if (addresses.length === 0) throw new UrlRefused('unresolvable', 'The URL\'s host name does not resolve.')
  }
  for (const { address } of addresses) {
    const kind = classifyAddress(address)
    if (kind === 'blocked') {
      throw new UrlRefused('private_address', 'The URL\'s host is (or resolves to) a private, link-local, reserved or otherwise internal address.')
    }
    if (kind === 'loopback' && !allowLoopback) throw new UrlRefused('loopback', 'The URL\'s host is (or resolves to) a loopback address.')
    if (kind === 'ok' && url.protocol === 'http:') {
      throw new UrlRefused('not_loopback_http', 'Plain http is allowed only to loopback addresses (WEBHOOK_ALLOW_LOOPBACK); use https://.')
    }
  }
  return { url, host, address: addresses[0]!, addresses }
}
