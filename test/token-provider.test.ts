// The cached bearer-token provider's rules, against a scripted TokenCredential and a controllable clock.
import t from 'tap'
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity'
import { pino } from 'pino'
import { CachedTokenProvider } from '../src/azure/token-provider.ts'
import { AppError } from '../src/errors.ts'

const log = pino({ level: 'silent' })

/** A credential whose answers the test scripts; counts calls and can hang or fail. */
class ScriptedCredential implements TokenCredential {
  calls = 0
  /** hang: until aborted (as the real credential with our HTTP client); deaf: ignores the abort. */
  mode: 'ok' | 'fail' | 'hang' | 'deaf' = 'ok'
  /** Calls that have not ended yet, and the most at once. */
  pending = 0
  maxPending = 0
  lifetimeMs = 3_600_000
  latencyMs = 0
  hung: NodeJS.Timeout[] = []
  now: () => number
  constructor (now: () => number) { this.now = now }

  async getToken (scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    this.pending++
    this.maxPending = Math.max(this.maxPending, this.pending)
    try {
      return await this.#getToken(scopes, options)
    } finally {
      this.pending--
    }
  }

  async #getToken (_scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    const n = ++this.calls
    if (this.latencyMs) await new Promise(resolve => setTimeout(resolve, this.latencyMs))
    if (this.mode === 'hang' || this.mode === 'deaf') {
      // Like a hung socket: pending, and keeping the event loop alive, until released (or aborted, unless deaf).
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, 30_000, null)
        this.hung.push(timer)
        if (this.mode === 'hang') {
          options?.abortSignal?.addEventListener('abort', () => { clearTimeout(timer); reject(Object.assign(new Error('aborted'), { name: 'AbortError' })) })
        }
      })
    }
    if (this.mode === 'fail') throw Object.assign(new Error('ManagedIdentityCredential: connection refused'), { name: 'CredentialUnavailableError' })
    return { token: `token-${n}`, expiresOnTimestamp: this.now() + this.lifetimeMs }
  }
}

function setup (options: Partial<ConstructorParameters<typeof CachedTokenProvider>[0]> = {}) {
  let clock = 1_000_000
  const now = () => clock
  const credential = new ScriptedCredential(now)
  const provider = new CachedTokenProvider({
    credential, credentialName: 'ScriptedCredential', scope: 'https://cognitiveservices.azure.com/.default', timeoutMs: 200, log, now, ...options
  })
  return { credential, provider, advance: (ms: number) => { clock += ms }, now }
}

t.test('concurrent first callers share one fetch, later callers use the cache', async t => {
  const { credential, provider } = setup()
  credential.latencyMs = 20
  const tokens = await Promise.all(Array.from({ length: 50 }, () => provider.getToken()))
  t.equal(credential.calls, 1)
  t.same(new Set(tokens), new Set(['token-1']))
  await provider.getToken()
  t.equal(credential.calls, 1)
  t.same(provider.stats, { fetches: 1, failures: 0, timeouts: 0, abandoned: 0 })
})

t.test('refreshes ahead of expiry in the background; callers never wait and never get an expired token', async t => {
  const { credential, provider, advance, now } = setup({ refreshAheadMs: 240_000, minValidityMs: 30_000 })
  credential.lifetimeMs = 600_000
  t.equal(await provider.getToken(), 'token-1')

  advance(600_000 - 240_000 + 1) // inside the refresh window
  credential.latencyMs = 50
  const started = performance.now()
  t.equal(await provider.getToken(), 'token-1', 'the cached token, at once')
  t.ok(performance.now() - started < 40, 'the caller did not wait for the refresh')
  t.equal(credential.calls, 2, 'a background refresh started')
  await new Promise(resolve => setTimeout(resolve, 80))
  t.equal(await provider.getToken(), 'token-2', 'the refreshed token')
  t.equal(credential.calls, 2, 'one refresh, not one per caller')

  // Walk the clock through several lifetimes; every token handed out must have life left.
  credential.latencyMs = 0
  for (let i = 0; i < 200; i++) {
    advance(10_000)
    const token = await provider.getToken()
    const n = Number(token.slice('token-'.length))
    t.ok(n >= 2, 'a token')
    await new Promise(resolve => setImmediate(resolve))
  }
  t.ok(provider.hasValidToken())
  t.ok(credential.calls < 200 / 30 * 2 + 4, `refreshes stay rare (${credential.calls} fetches for 2000 s of 600 s tokens)`)
  void now
})

t.test('an expiring token is never handed out: callers wait for a fresh one', async t => {
  const { credential, provider, advance } = setup({ minValidityMs: 30_000 })
  credential.lifetimeMs = 60_000
  await provider.getToken()
  advance(45_000) // 15 s left: less than the minimum validity
  credential.latencyMs = 10
  t.equal(await provider.getToken(), 'token-2')
})

t.test('a hung fetch times out with AUTH_UNAVAILABLE and is aborted; callers fail fast until the retry delay, then one fresh fetch', async t => {
  const { credential, provider, advance } = setup({ timeoutMs: 100, retryDelayMs: 3_000 })
  credential.mode = 'hang'
  const started = performance.now()
  const first = provider.getToken().catch((e: unknown) => e)
  const joined = await Promise.all(Array.from({ length: 20 }, () => provider.getToken().catch((e: unknown) => e)))
  const err = await first
  t.ok(err instanceof AppError)
  t.equal((err as AppError).code, 'AUTH_UNAVAILABLE')
  t.match((err as AppError).message, /ScriptedCredential did not answer within 100 ms/)
  t.ok(performance.now() - started < 1000, 'bounded by the timeout')
  t.ok(joined.every(e => e instanceof AppError && e.code === 'AUTH_UNAVAILABLE'), 'callers during the fetch waited for it and failed with it')
  t.equal(credential.calls, 1, 'one fetch for 21 callers')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(credential.pending, 0, 'the timeout aborted the credential\'s call')
  t.equal(provider.stats.timeouts, 1)

  // During the retry delay: no new fetch, callers fail at once with the last reason.
  const fast = performance.now()
  const again = await provider.getToken().catch((e: unknown) => e) as AppError
  t.equal(again.code, 'AUTH_UNAVAILABLE')
  t.match(again.message, /did not answer within 100 ms/)
  t.ok(performance.now() - fast < 50, 'failed at once')
  t.equal(credential.calls, 1, 'no second fetch within the retry delay')

  credential.mode = 'ok'
  advance(3_000)
  t.equal(await provider.getToken(), 'token-2', 'recovered with one new fetch after the retry delay')
  t.equal(credential.maxPending, 1, 'never more than one call outstanding')
  credential.hung.forEach(clearTimeout)
  t.equal(provider.lastError, undefined)
})

t.test('a fetch that ignores the abort keeps the slot (no second fetch) until it is given up on', async t => {
  const logged: Array<Record<string, unknown>> = []
  const lines = pino({ level: 'warn' }, { write: (line: string) => { logged.push(JSON.parse(line)) } })
  const { credential, provider, advance } = setup({ timeoutMs: 100, retryDelayMs: 50, abandonAfterMs: 300, log: lines })
  credential.mode = 'deaf'
  t.equal((await provider.getToken().catch((e: AppError) => e) as AppError).code, 'AUTH_UNAVAILABLE')
  advance(1_000) // past the retry delay: only the outstanding call holds the slot now
  const held = await provider.getToken().catch((e: AppError) => e) as AppError
  t.equal(held.code, 'AUTH_UNAVAILABLE', 'failed at once')
  t.equal(credential.calls, 1, 'no second fetch while the first has not ended')
  provider.refreshIfStale()
  t.equal(credential.calls, 1, 'nor from a readiness check')

  await new Promise(resolve => setTimeout(resolve, 350))
  t.equal(provider.stats.abandoned, 1, 'given up on after abandonAfterMs')
  t.match(logged.find(l => l.level === 50), { msg: /did not end when aborted/ }, 'logged as an error')
  credential.mode = 'ok'
  t.equal(await provider.getToken(), 'token-2', 'a new fetch once the stuck one is given up on')
  credential.hung.forEach(clearTimeout)
})

t.test('failures say which credential failed, without secrets', async t => {
  const { credential, provider } = setup()
  credential.mode = 'fail'
  const err = await provider.getToken().catch((e: unknown) => e) as AppError
  t.equal(err.code, 'AUTH_UNAVAILABLE')
  t.match(err.message, /ScriptedCredential failed: CredentialUnavailableError: ManagedIdentityCredential: connection refused/)
  t.equal(provider.stats.failures, 1)
  t.equal(await provider.warmUp(), false, 'warm-up reports failure instead of throwing')
})

t.test('background refreshes that keep failing until expiry cause no unhandled rejection', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const { credential, provider, advance } = setup({ refreshAheadMs: 240_000, minValidityMs: 30_000, retryDelayMs: 3_000 })
  credential.lifetimeMs = 300_000
  await provider.getToken()
  credential.mode = 'fail'
  // Callers keep coming through the refresh window; each failed refresh is swallowed and retried later.
  for (let i = 0; i < 60; i++) {
    advance(4_000)
    const token = await provider.getToken().catch((e: unknown) => e)
    if (token instanceof AppError) t.equal(token.code, 'AUTH_UNAVAILABLE')
    await new Promise(resolve => setImmediate(resolve))
  }
  // And then nobody calls while the last refreshes fail.
  advance(600_000)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(unhandled, [], 'no unhandled rejection')
  t.ok(provider.stats.failures > 1, `failures were counted (${provider.stats.failures})`)
  t.notOk(provider.hasValidToken())
})
