// SSRF: which addresses an endpoint may have (every literal shape of an internal address, names that
// resolve to one), refused at creation with WEBHOOK_URL_REFUSED and again at each delivery (DNS changed);
// the connection goes to the address checked (pinned), and redirects are not followed.
import t from 'tap'
import { classifyAddress, checkEndpointUrl, UrlRefused, type ResolvedAddress } from '../src/webhooks/ssrf.ts'
import { startReceiver } from './support/webhook-receiver.ts'
import { buildWebhookApp, createEndpoint, deliveries, identify, sleep, waitFor } from './support/webhooks.ts'

const PUBLIC = '93.184.216.34'
const names = new Map<string, ResolvedAddress[]>([
  ['loopback.example', [{ address: '127.0.0.1', family: 4 }]],
  ['localhost', [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]],
  ['imds.example', [{ address: '169.254.169.254', family: 4 }]],
  ['private.example', [{ address: '10.1.2.3', family: 4 }]],
  ['mixed.example', [{ address: PUBLIC, family: 4 }, { address: '192.168.1.10', family: 4 }]],
  ['ula.example', [{ address: 'fd12:3456::1', family: 6 }]],
  ['mapped.example', [{ address: '::ffff:169.254.169.254', family: 6 }]],
  ['public.example', [{ address: PUBLIC, family: 4 }]]
])
const resolve = async (host: string): Promise<ResolvedAddress[]> => {
  const found = names.get(host)
  if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
  return found
}

t.test('addresses: internal ones in every shape are blocked, public ones pass', async t => {
  for (const address of ['127.0.0.1', '127.255.0.1', '::1']) t.equal(classifyAddress(address), 'loopback', address)
  for (const address of [
    '10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.0.1', '169.254.169.254', '169.254.0.1', '100.64.0.1', '100.127.255.254',
    '0.0.0.0', '0.1.2.3', '224.0.0.1', '239.255.255.250', '255.255.255.255', '240.0.0.1', '198.18.0.1', '192.0.2.1',
    '::', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd00:ec2::254', 'ff02::1', '2001:db8::1',
    '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '::ffff:0:0', '64:ff9b::a9fe:a9fe', '2002:a9fe:a9fe::1', '::169.254.169.254',
    // Azure's WireServer, local-use NAT64, SIIT-translated addresses
    '168.63.129.16', '::ffff:168.63.129.16', '64:ff9b:1::808:808', '::ffff:0:a9fe:a9fe', '::ffff:0:10.1.2.3'
  ]) t.equal(classifyAddress(address), 'blocked', address)
  t.equal(classifyAddress('::ffff:0:127.0.0.1'), 'loopback', 'SIIT-translated loopback')
  t.equal(classifyAddress('168.63.129.17'), 'ok', 'only the WireServer address itself, not its neighbours')
  t.equal(classifyAddress('::ffff:127.0.0.1'), 'loopback', 'IPv4-mapped loopback')
  for (const address of [PUBLIC, '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
    t.equal(classifyAddress(address), 'ok', address)
  }
  t.equal(classifyAddress('not an address'), 'blocked')
})

t.test('URLs refused without DNS or by what a name resolves to', async t => {
  const refusals: Array<[string, string, boolean]> = [
    ['ftp://public.example/', 'scheme', false],
    ['http://public.example/', 'scheme', false],
    ['https://user:pw@public.example/', 'credentials', false],
    ['not a url', 'malformed', false],
    // Literal loopback in several shapes (the URL parser normalises them to 127.0.0.1 / ::ffff:7f00:1).
    ['https://2130706433/', 'loopback', false],
    ['https://0x7f.1/', 'loopback', false],
    ['https://0177.0.0.1/', 'loopback', false],
    ['https://127.1/', 'loopback', false],
    ['https://[::ffff:127.0.0.1]/', 'loopback', false],
    ['https://[::1]:8443/', 'loopback', false],
    ['https://localhost/', 'loopback', false],
    ['https://loopback.example/hook', 'loopback', false],
    // Internal addresses, always refused (loopback allowed or not).
    ['https://169.254.169.254/metadata/instance', 'private_address', true],
    ['https://0xa9fea9fe/', 'private_address', true],
    ['https://[fe80::1]/', 'private_address', true],
    ['https://[fc00::1]/', 'private_address', true],
    ['https://[::ffff:169.254.169.254]/', 'private_address', true],
    ['https://10.0.0.1/', 'private_address', true],
    ['https://100.64.0.1/', 'private_address', true],
    ['https://0.0.0.0/', 'private_address', true],
    ['https://[::]/', 'private_address', true],
    ['https://224.0.0.1/', 'private_address', true],
    ['https://imds.example/', 'private_address', true],
    ['https://private.example/', 'private_address', true],
    ['https://mixed.example/', 'private_address', true],
    ['https://ula.example/', 'private_address', true],
    ['https://mapped.example/', 'private_address', true],
    ['https://nowhere.example/', 'unresolvable', true],
    // With loopback allowed, plain http only to loopback.
    ['http://public.example/', 'not_loopback_http', true]
  ]
  for (const [url, reason, allowLoopback] of refusals) {
    const refusal = await checkEndpointUrl(url, { allowLoopback, resolve }).then(() => null, (err: unknown) => err)
    t.ok(refusal instanceof UrlRefused, url)
    t.equal((refusal as UrlRefused).reason, reason, url)
  }
  const allowed = await checkEndpointUrl('https://public.example:8443/hooks?x=1', { allowLoopback: false, resolve })
  t.same(allowed.address, { address: PUBLIC, family: 4 })
  t.equal(allowed.host, 'public.example')
  const loopback = await checkEndpointUrl('http://localhost:9/x', { allowLoopback: true, resolve })
  t.equal(loopback.address.address, '127.0.0.1')
})

t.test('createWebhookEndpoint refuses internal URLs with WEBHOOK_URL_REFUSED', async t => {
  const app = await buildWebhookApp(t, { WEBHOOK_ALLOW_LOOPBACK: 'false' }, { resolve })
  for (const [url, reason] of [
    ['http://2130706433/', 'scheme'],
    ['https://2130706433/', 'loopback'],
    ['https://[::ffff:127.0.0.1]/', 'loopback'],
    ['https://0x7f.1/', 'loopback'],
    ['https://loopback.example/', 'loopback'],
    ['https://169.254.169.254/', 'private_address'],
    ['https://imds.example/', 'private_address'],
    ['https://[fe80::1]/', 'private_address']
  ] as const) {
    const { answer } = await createEndpoint(app, url)
    t.match(answer.body.errors?.[0], { extensions: { code: 'WEBHOOK_URL_REFUSED', reason } }, url)
    t.notOk(answer.raw.includes('ENOTFOUND'), 'no resolver detail in the answer')
  }
  const { id } = await createEndpoint(app, 'https://public.example/hook')
  t.ok(id, 'a public https URL is accepted')
  const updated = await createEndpoint(app, 'https://public.example/other')
  const { sendJson } = await import('./support/http.ts')
  const { admin } = await import('./support/webhooks.ts')
  const answer = await sendJson(app, { query: `mutation { updateWebhookEndpoint(id: "${updated.id}", url: "https://imds.example/") { id } }` }, admin)
  t.match(answer.body.errors?.[0], { extensions: { code: 'WEBHOOK_URL_REFUSED', reason: 'private_address' } }, 'changing the URL is checked too')
})

t.test('checked again at each delivery: a name that now resolves to the metadata address is refused; the connection is pinned', async t => {
  const receiver = await startReceiver(t)
  let target = '127.0.0.1'
  const dynamic = async (host: string): Promise<ResolvedAddress[]> => host === 'rebind.example' ? [{ address: target, family: 4 }] : await resolve(host)
  const app = await buildWebhookApp(t, { WEBHOOK_RETRY_SCHEDULE: '0,0.2,0.2' }, { resolve: dynamic })
  const { id: endpointId } = await createEndpoint(app, `http://rebind.example:${receiver.port}/hook`)
  await identify(app)
  await waitFor(() => receiver.received.length === 1)
  t.equal(receiver.received[0]!.host, `rebind.example:${receiver.port}`, 'sent to the address checked, with the name as Host (no system DNS)')
  target = '169.254.169.254'
  await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'FAILED', 30_000, 'given up')
  t.equal(receiver.received.length, 1, 'nothing sent once the name resolves to an internal address')
  t.match((await deliveries(app, endpointId)).edges[0].node.attempts, [
    { responseStatus: null, error: 'refused: private_address' }, { error: 'refused: private_address' }, { error: 'refused: private_address' }
  ])
})

t.test('redirects are not followed: a 3xx is a failed attempt', async t => {
  const elsewhere = await startReceiver(t)
  const receiver = await startReceiver(t, () => ({ status: 307, headers: { location: elsewhere.url() } }))
  const app = await buildWebhookApp(t, { WEBHOOK_RETRY_SCHEDULE: '0,0.1' })
  const { id: endpointId } = await createEndpoint(app, receiver.url())
  await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'FAILED', 30_000, 'given up')
  await sleep(100)
  t.equal(receiver.received.length, 2)
  t.equal(elsewhere.received.length, 0, 'the redirect target was never called')
  t.match((await deliveries(app, endpointId)).edges[0].node.attempts, [{ responseStatus: 307 }, { responseStatus: 307 }])
})

t.test('every checked address is offered to the connection (IPv6 first, IPv4 after), none unchecked', async t => {
  const both = async (): Promise<ResolvedAddress[]> => [{ address: '2001:4860:4860::8888', family: 6 }, { address: PUBLIC, family: 4 }]
  const checked = await checkEndpointUrl('https://dual.example/hook', { allowLoopback: false, resolve: both })
  t.same(checked.addresses, [{ address: '2001:4860:4860::8888', family: 6 }, { address: PUBLIC, family: 4 }])
  const mixed = async (): Promise<ResolvedAddress[]> => [{ address: PUBLIC, family: 4 }, { address: '10.0.0.7', family: 4 }]
  const refused = await checkEndpointUrl('https://mixed.example/hook', { allowLoopback: false, resolve: mixed }).catch((err: unknown) => err)
  t.ok(refused instanceof UrlRefused && refused.reason === 'private_address', 'one internal address among them refuses the whole name')
})

t.test('a resolver that hangs at delivery costs one attempt of WEBHOOK_TIMEOUT_MS, not the lease', async t => {
  const receiver = await startReceiver(t)
  let hang = false
  const slow = async (host: string): Promise<ResolvedAddress[]> => {
    if (hang && host === 'slow.example') await new Promise(() => {}) // never answers
    return host === 'slow.example' ? [{ address: '127.0.0.1', family: 4 }] : []
  }
  const app = await buildWebhookApp(t, { WEBHOOK_RETRY_SCHEDULE: '0,0.2', WEBHOOK_TIMEOUT_MS: '300' }, { resolve: slow })
  const { id: endpointId } = await createEndpoint(app, `http://slow.example:${receiver.port}/hook`)
  hang = true
  await identify(app)
  await waitFor(async () => (await deliveries(app, endpointId)).edges[0]?.node.state === 'FAILED', 30_000, 'given up')
  t.match((await deliveries(app, endpointId)).edges[0].node.attempts, [
    { responseStatus: null, error: /did not resolve within 300 ms/ }, { error: /did not resolve within 300 ms/ }
  ], 'each attempt ends at the attempt timeout')
  t.equal(receiver.received.length, 0)
})
