// The field app's offline queue belongs to the identity that queued it, in Debian's Chromium against the real service:
// on a shared phone, user A's photos are never sent with user B's credentials. Sign-out with photos waiting asks
// (keep them for A, or discard them); kept ones go once A signs in again, discarded ones never; a refused sign-in's
// photos resume only for that same identity; photos queued before owners were recorded wait until someone claims them.
// What the service received is the evidence: every multipart upload with the key it carried, and each caller's history.
import type { IncomingMessage } from 'node:http'
import t, { type Test } from 'tap'
import sharp from 'sharp'
import type { BrowserContext, Page } from 'playwright-core'
import { sha256Hex } from '../src/callers/api-keys.ts'
import { buildTestApp } from './helper.ts'
import { launchChromium, loopbackOnly, PHONE, screenshots, seriousViolations, WAIT_MS, watchErrors } from './support/browser.ts'

const ALICE = 'agv_queue-owner-alice'
const BORIS = 'agv_queue-owner-boris'
/** A key the service does not know: refused with 401. */
const STRANGER = 'agv_queue-owner-not-a-key-the-service-knows'

// Five phones in Chromium: more than tap's default file timeout on a loaded two-core machine.
t.setTimeout(300_000)

const app = await buildTestApp(t, { env: { AUTH_MODE: 'apikey', API_KEY_HASHES: `alice:${sha256Hex(ALICE)},boris:${sha256Hex(BORIS)}` } })

/** Every multipart upload the service received: the key it carried and its Idempotency-Key. */
const uploads: Array<{ apiKey: string, key: string }> = []
app.server.prependListener('request', (req: IncomingMessage) => {
  if (req.method === 'POST' && req.url === '/graphql' && String(req.headers['content-type']).startsWith('multipart/')) {
    uploads.push({ apiKey: String(req.headers['x-api-key'] ?? ''), key: String(req.headers['idempotency-key'] ?? '') })
  }
})
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const browser = await launchChromium(t)

const sentWith = (apiKey: string): number => uploads.filter(upload => upload.apiKey === apiKey).length

/** The identifications the service recorded for this key's caller. */
async function historyOf (apiKey: string): Promise<string[]> {
  await app.history!.flushed()
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'x-api-key': apiKey }, payload: { query: '{ identifications(first: 100) { edges { node { id callerId } } } }' } })
  return res.json().data.identifications.edges.map((edge: { node: { callerId: string } }) => edge.node.callerId)
}

let shade = 0
/** A different small photo each time (the result cache must not answer one for another). */
async function photo (): Promise<Buffer> {
  shade += 17
  return await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: shade % 256, g: 120, b: 60 } } }).jpeg().toBuffer()
}

async function pick (page: Page): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('label.button').first().click()])
  await chooser.setFiles({ name: 'field.jpg', mimeType: 'image/jpeg', buffer: await photo() })
}

/** Signs in with a key (no round trip: the key is checked by the service when something is sent). */
async function signIn (page: Page, key: string): Promise<void> {
  await page.locator('#api-key').fill(key)
  await page.locator('form button[type=submit]').click()
  await page.locator('.capture').waitFor()
}

async function signOut (page: Page, choice?: 'keep' | 'discard'): Promise<void> {
  await page.getByTestId('sign-out').click()
  if (choice !== undefined) await page.getByTestId('sign-out-dialog').locator(`button[data-choice=${choice}]`).click()
  await page.locator('#api-key').waitFor()
}

/** Time for a send that should not happen to arrive. */
async function settle (ms = 2000): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

async function until (what: string, done: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`not within ${WAIT_MS} ms: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function phone (t: Test, locale = 'en-GB'): Promise<{ context: BrowserContext, page: Page, errors: string[], external: string[] }> {
  const context = await browser.newContext({ ...PHONE, locale })
  t.teardown(() => context.close())
  context.setDefaultTimeout(WAIT_MS)
  const external = await loopbackOnly(context)
  const page = await context.newPage()
  const errors = await watchErrors(page)
  await page.goto(base)
  await page.locator('#api-key').waitFor()
  // The service worker caches the shell: a reload with no connection then opens the app.
  await page.evaluate(async () => { await navigator.serviceWorker.ready })
  return { context, page, errors, external }
}

t.test('kept for A at sign-out: B signed in online sends nothing; A signed in again sends it once', { timeout: 120_000 }, async t => {
  const { context, page, errors, external } = await phone(t, 'ru-RU')
  const before = { alice: await historyOf(ALICE), boris: await historyOf(BORIS) }
  await signIn(page, ALICE)
  await context.setOffline(true)
  await pick(page)
  await page.getByTestId('queue').waitFor()

  await page.getByTestId('sign-out').click()
  const dialog = page.getByTestId('sign-out-dialog')
  await dialog.waitFor()
  t.match(await dialog.innerText(), /Не отправлено ваших фото: 1[\s\S]*Никто другой/, 'the question, in Russian: the photo is A\'s, nobody else sends it')
  t.ok(await dialog.evaluate(element => (element as HTMLDialogElement).open && element.matches(':modal')), 'a modal dialog')
  t.strictSame(await seriousViolations(page), [], 'sign-out question: no serious or critical accessibility violation')
  await screenshots(page, '6-sign-out-question')
  await page.keyboard.press('Escape')
  await dialog.waitFor({ state: 'detached' })
  t.equal(await page.getByTestId('queue').locator('li').count(), 1, 'Escape: still signed in, the photo still waits')
  await signOut(page, 'keep')

  await signIn(page, BORIS)
  await context.setOffline(false)
  await settle()
  t.equal(sentWith(BORIS), 0, 'nothing was sent with B\'s key')
  t.equal(sentWith(ALICE), 0, 'nor with A\'s')
  t.equal(await page.getByTestId('queue').count(), 0, 'B is not shown A\'s photo')
  await signOut(page) // B has nothing waiting: no question
  t.strictSame(await historyOf(BORIS), before.boris, 'B\'s history: unchanged')

  await signIn(page, ALICE)
  await until('A\'s photo recorded', async () => (await historyOf(ALICE)).length > before.alice.length)
  await settle()
  t.equal(sentWith(ALICE), 1, 'sent once, with A\'s key')
  t.equal(sentWith(BORIS), 0)
  t.strictSame(await historyOf(ALICE), ['alice', ...before.alice], 'recorded once, as A')
  t.equal(await page.getByTestId('queue').count(), 0, 'the queue is empty')
  t.strictSame(errors, [], 'no page error, console error or CSP violation')
  t.strictSame(external, [], 'nothing requested off loopback')
})

t.test('discarded at sign-out: sent by nobody, also when A signs in again', { timeout: 120_000 }, async t => {
  const { context, page, errors, external } = await phone(t)
  const sent = uploads.length
  await signIn(page, ALICE)
  await context.setOffline(true)
  await pick(page)
  await pick(page)
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=queue] li').length === 2)
  await page.getByTestId('sign-out').click()
  t.match(await page.getByTestId('sign-out-dialog').innerText(), /2 photos you took have not been sent yet[\s\S]*Nobody else/, 'the question, in English')
  await page.getByTestId('sign-out-dialog').locator('button[data-choice=discard]').click()
  await page.locator('#api-key').waitFor()
  await context.setOffline(false)

  await signIn(page, BORIS)
  await settle(1000)
  await signOut(page)
  await signIn(page, ALICE)
  await settle()
  t.equal(uploads.length, sent, 'nothing was sent, under either key')
  t.equal(await page.getByTestId('queue').count(), 0, 'nothing waits for A')
  t.equal(await page.evaluate(async () => await new Promise<number>((resolve, reject) => {
    const open = indexedDB.open('agrivision')
    open.onerror = () => { reject(open.error) }
    open.onsuccess = () => {
      const count = open.result.transaction('queue').objectStore('queue').count()
      count.onsuccess = () => { resolve(count.result) }
    }
  })), 0, 'and nothing is left on the phone')
  t.strictSame(errors, [])
  t.strictSame(external, [])
})

t.test('kept, then the page reloaded between sign-out and sign-in (offline, then online): still only A sends it', { timeout: 120_000 }, async t => {
  const { context, page, errors, external } = await phone(t)
  const before = await historyOf(ALICE)
  await signIn(page, ALICE)
  await context.setOffline(true)
  await pick(page)
  await page.getByTestId('queue').waitFor()
  await signOut(page, 'keep')
  await page.reload() // no connection: the shell from the service worker
  await page.locator('#api-key').waitFor()
  await signIn(page, BORIS)
  await context.setOffline(false)
  await page.reload() // online: B's key from sessionStorage, a fresh Sender
  await page.locator('.capture').waitFor()
  await settle()
  t.equal(sentWith(BORIS), 0, 'nothing was sent with B\'s key')
  t.equal(await page.getByTestId('queue').count(), 0, 'B is not shown A\'s photo')
  await signOut(page)
  await page.reload()
  await signIn(page, ALICE)
  await until('A\'s photo recorded', async () => (await historyOf(ALICE)).length > before.length)
  await settle()
  t.strictSame(await historyOf(ALICE), ['alice', ...before], 'sent once A signed in again, recorded once as A')
  t.equal(sentWith(BORIS), 0)
  t.strictSame(errors, [])
  t.strictSame(external, [])
})

t.test('"sign in again": refused photos resume only for the same identity', { timeout: 120_000 }, async t => {
  const { page, errors, external } = await phone(t)

  await t.test('a key the service refuses: its photo is never sent with the next user\'s key', async t => {
    await signIn(page, STRANGER)
    await pick(page)
    await page.getByRole('alert').waitFor()
    t.match(await page.getByRole('alert').innerText(), /sign in again with the same key or account/i)
    t.equal(sentWith(STRANGER), 1, 'tried once with the refused key')
    t.equal(await page.getByTestId('queue').locator('li').count(), 1, 'the photo waits')
    await signOut(page, 'keep')
    await signIn(page, BORIS)
    await settle()
    t.equal(sentWith(BORIS), 0, 'nothing was sent with B\'s (valid) key')
    t.equal(await page.getByTestId('queue').count(), 0, 'B is not shown it')
    await signOut(page)
    await signIn(page, STRANGER) // the same identity again: it resumes (and is refused again)
    await page.getByRole('alert').waitFor()
    t.equal(sentWith(STRANGER), 2, 'resumed for the same key')
    await signOut(page, 'discard')
    await signIn(page, STRANGER)
    await settle(1000)
    t.equal(sentWith(STRANGER), 2, 'discarded: not tried again')
    await signOut(page)
  })

  await t.test('A refused for a while (an expired sign-in): B sends nothing; A signed in again sends it once', async t => {
    const before = await historyOf(ALICE)
    // The refusal, as the phone sees it, for A's uploads only, until A signs out.
    await page.route('**/graphql', async route => {
      const request = route.request()
      if (request.headers()['x-api-key'] !== ALICE || !String(request.headers()['content-type']).startsWith('multipart/')) return await route.fallback()
      await route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ errors: [{ message: 'sign-in expired', extensions: { code: 'UNAUTHENTICATED' } }] }) })
    })
    await signIn(page, ALICE)
    await pick(page)
    await page.getByRole('alert').waitFor()
    await signOut(page, 'keep')
    await page.unroute('**/graphql')
    await signIn(page, BORIS)
    await settle()
    t.equal(sentWith(BORIS), 0, 'nothing was sent with B\'s key')
    await signOut(page)
    await signIn(page, ALICE)
    await until('A\'s photo recorded', async () => (await historyOf(ALICE)).length > before.length)
    await settle()
    t.strictSame(await historyOf(ALICE), ['alice', ...before], 'sent once A signed in again, recorded as A')
    t.equal(sentWith(BORIS), 0)
  })
  t.strictSame(errors, [])
  t.strictSame(external, [])
})

/** Puts an entry in the queue as the app did before owners were recorded (no owner field). */
async function queueUnowned (page: Page, queuedAt: number): Promise<void> {
  const jpeg = (await photo()).toString('base64')
  await page.evaluate(async ({ jpeg, queuedAt }) => {
    const bytes = Uint8Array.from(atob(jpeg), c => c.charCodeAt(0))
    const entry = { key: crypto.randomUUID(), photo: new Blob([bytes], { type: 'image/jpeg' }), instructions: '', language: 'en', detail: 'AUTO', queuedAt, bytes: bytes.length }
    await new Promise<void>((resolve, reject) => {
      const open = indexedDB.open('agrivision')
      open.onupgradeneeded = () => { open.result.createObjectStore('queue') }
      open.onerror = () => { reject(open.error) }
      open.onsuccess = () => {
        const tx = open.result.transaction('queue', 'readwrite')
        tx.objectStore('queue').put(entry, entry.key)
        tx.oncomplete = () => { open.result.close(); resolve() }
        tx.onerror = () => { reject(tx.error) }
      }
    })
  }, { jpeg, queuedAt })
}

t.test('photos from before owners were recorded: sent by nobody until the signed-in user claims them', { timeout: 120_000 }, async t => {
  const { page, errors, external } = await phone(t)
  const sent = uploads.length
  await queueUnowned(page, Date.now() - 60_000)
  await page.reload()
  await signIn(page, BORIS)
  const card = page.getByTestId('unowned')
  await card.waitFor()
  await settle()
  t.equal(uploads.length, sent, 'not sent on sign-in')
  t.match(await card.innerText(), /1 photo waits on this phone from an earlier version[\s\S]*did not record who took them/)
  t.strictSame(await seriousViolations(page), [], 'the question: no serious or critical accessibility violation')
  await screenshots(page, '7-unowned-photos')
  t.equal(await page.getByTestId('queue').count(), 0, 'not in B\'s queue either')

  await t.test('discarded: gone, never sent', async t => {
    await card.locator('button[data-choice=discard]').click()
    await card.waitFor({ state: 'detached' })
    await signOut(page)
    await signIn(page, ALICE)
    await settle()
    t.equal(uploads.length, sent, 'nothing was sent')
    t.equal(await page.getByTestId('unowned').count(), 0, 'and nobody is asked again')
    await signOut(page)
  })

  await t.test('claimed: sent once, as the user who claimed it, and not offered to the next one', async t => {
    const before = await historyOf(BORIS)
    await queueUnowned(page, Date.now() - 30_000)
    await page.reload()
    await signIn(page, BORIS)
    await card.locator('button[data-choice=claim]').click()
    await until('the claimed photo recorded', async () => (await historyOf(BORIS)).length > before.length)
    await settle()
    t.equal(uploads.length, sent + 1, 'sent once')
    t.equal(sentWith(BORIS), 1, 'with the claimer\'s key')
    t.strictSame(await historyOf(BORIS), ['boris', ...before], 'recorded as the claimer')
    await signOut(page)
    await signIn(page, ALICE)
    await settle(1000)
    t.equal(await page.getByTestId('unowned').count(), 0, 'the next user is not asked')
  })
  t.strictSame(errors, [])
  t.strictSame(external, [])
})
