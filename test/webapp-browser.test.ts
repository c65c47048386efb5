// The field app in Debian's Chromium at a phone's size, against the real service and the loopback fake Azure
// (which counts model calls): sign in, photograph (file chooser), progress and answer, history with its thumbnail,
// an identification from a second page arriving live, offline capture sent once when the connection returns (also
// after the page is reopened), and a request cut off after the service answered, retried without a second model call.
// Each screen passes axe-core with no serious or critical violation; screenshots at phone and desktop sizes.
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import sharp from 'sharp'
import type { Page } from 'playwright-core'
import { sha256Hex } from '../src/callers/api-keys.ts'
import { buildAzureTestApp } from './helper.ts'
import { FakeAzure, imageFromChat } from './support/fake-azure.ts'
import { launchChromium, loopbackOnly, PHONE, screenshotDir, screenshots, seriousViolations, WAIT_MS, watchErrors } from './support/browser.ts'

// Three phones in Chromium: more than tap's default file timeout on a loaded two-core machine.
t.setTimeout(300_000)

const KEY = 'agv_field-app-browser-test'
const fake = await new FakeAzure().start()
t.teardown(() => fake.close())
const { app } = await buildAzureTestApp(t, fake, {
  AUTH_MODE: 'apikey',
  API_KEY_HASHES: `farmer:${sha256Hex(KEY)}`
})

// Every multipart upload as the server received it: its size and Idempotency-Key.
const uploads: Array<{ bytes: number, key: string | undefined }> = []
app.server.prependListener('request', (req: IncomingMessage) => {
  if (req.method === 'POST' && req.url === '/graphql' && String(req.headers['content-type']).startsWith('multipart/')) {
    uploads.push({ bytes: Number(req.headers['content-length'] ?? 0), key: req.headers['idempotency-key'] as string | undefined })
  }
})
const base = await app.listen({ host: '127.0.0.1', port: 0 })

// A 12 MP phone photo: 4000 × 3000 with sensor-like noise, several MB.
const photo = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: { r: 60, g: 110, b: 40 }, noise: { type: 'gaussian', mean: 110, sigma: 18 } } })
  .jpeg({ quality: 92 }).toBuffer()

async function pick (page: Page, name: string): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('label.button').first().click()])
  await chooser.setFiles({ name, mimeType: 'image/jpeg', buffer: photo })
}

async function signIn (page: Page): Promise<void> {
  await page.goto(base)
  await page.locator('#api-key').fill(KEY)
  await page.locator('form button[type=submit]').click()
  await page.locator('.capture').waitFor()
}

t.test('the field app on a phone', { timeout: 180_000 }, async t => {
  const browser = await launchChromium(t)
  const context = await browser.newContext({ ...PHONE, locale: 'ru-RU' })
  context.setDefaultTimeout(WAIT_MS)
  const external = await loopbackOnly(context)
  const page = await context.newPage()
  const errors = await watchErrors(page)

  await page.goto(base)
  await page.locator('#api-key').waitFor()
  t.equal(await page.locator('html').getAttribute('lang'), 'ru', 'Russian, from the browser')
  t.strictSame(await seriousViolations(page), [], 'sign-in: no serious or critical accessibility violation')
  await screenshots(page, '1-sign-in')
  await page.locator('#api-key').fill(KEY)
  await page.locator('form button[type=submit]').click()
  await page.locator('.capture').waitFor()
  t.strictSame(await seriousViolations(page), [], 'capture: no serious or critical accessibility violation')
  await screenshots(page, '2-capture')

  await t.test('a photo through the file chooser: progress, then the answer card', async t => {
    // A slow uplink (64 KB/s), so that the progress bar shows for a while; whether it ever showed is recorded in the
    // page (a short-lived element can fall between two polls of a busy test machine).
    const cdp = await context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 40, downloadThroughput: -1, uploadThroughput: 64 * 1024 })
    await page.evaluate(() => {
      const seen = globalThis as unknown as { sawProgress: boolean }
      seen.sawProgress = false
      new MutationObserver(() => { if (document.querySelector('[data-testid=progress]')) seen.sawProgress = true })
        .observe(document.body, { childList: true, subtree: true })
    })
    const card = page.getByTestId('result')
    try {
      await pick(page, 'IMG_0001.jpg')
      await card.waitFor({ timeout: 60_000 })
    } finally {
      // Back to no throttling whatever happened: later steps go offline and online with the context's own switch.
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
      await cdp.detach()
    }
    t.ok(await page.evaluate(() => (globalThis as unknown as { sawProgress: boolean }).sawProgress), 'the upload progress bar showed')
    t.match(await card.innerText(), /Трактор[\s\S]*John Deere 6R series[\s\S]*высокая[\s\S]*JOHN DEERE lettering/, 'category, make, model, confidence, evidence')
    t.equal(fake.chatRequests.length, 1, 'one model call')
    t.equal(imageFromChat(fake.chatRequests[0]!).detail, 'low', 'the app asks ADAPTIVE: a sure LOW look is the answer')
    t.match(await card.getByTestId('looks').innerText(), /Один взгляд \(детализация LOW\)/, 'the card says how the answer was looked at')
    const sent = uploads.at(-1)!.bytes
    t.ok(sent <= photo.length * 0.1, `uploaded ${sent} bytes of a ${photo.length}-byte photo (${(100 * sent / photo.length).toFixed(1)} %, at most 10 %)`)
    t.match(await page.getByTestId('saved').innerText(), /→/, 'the bytes saved are shown')
    t.strictSame(await seriousViolations(page), [], 'answer: no serious or critical accessibility violation')
    await screenshots(page, '3-answer')
  })

  await t.test('the history, with its thumbnail; a second page\'s identification arrives live', async t => {
    // The thumbnail is made just after the answer: wait until the API lists it.
    await waitForThumbnails(1)
    await page.locator('nav button').nth(1).click()
    const list = page.getByTestId('history')
    await list.locator('.history-item').first().waitFor()
    const thumbnail = list.locator('.history-item img').first()
    await thumbnail.waitFor()
    t.ok(await thumbnail.evaluate(img => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), 'the thumbnail loaded from its signed URL')
    t.match(await thumbnail.getAttribute('src'), /\/thumbnails\//)

    const other = await context.newPage()
    await signIn(other)
    const live = page.locator('.history-item .badge')
    await pick(other, 'IMG_0002.jpg')
    await other.getByTestId('result').waitFor()
    await live.first().waitFor()
    t.equal(await list.locator('.history-item').count(), 2, 'the identification from the other page appeared in this one\'s history')
    t.equal(fake.chatRequests.length, 2)
    await other.close()
    t.strictSame(await seriousViolations(page), [], 'history: no serious or critical accessibility violation')
    await screenshots(page, '4-history')

    await page.locator('.history-item').first().locator('button').click()
    await page.waitForFunction(() => document.querySelectorAll('.history-item').length === 1)
    t.pass('delete removes it from the list')
  })

  await t.test('offline: the photo waits (also across a reload) and is sent exactly once when the connection returns', async t => {
    await page.locator('nav button').first().click()
    await context.setOffline(true)
    await pick(page, 'IMG_0003.jpg')
    const queue = page.getByTestId('queue')
    await queue.waitFor()
    t.match(await queue.innerText(), /\(1\)/, 'one photo waiting')
    t.strictSame(await seriousViolations(page), [], 'queue: no serious or critical accessibility violation')
    await screenshots(page, '5-offline-queue')
    await page.reload() // reopened with no connection: the shell from the service worker, the photo from IndexedDB
    await page.getByTestId('queue').waitFor()
    t.pass('the app opens offline and the photo still waits')
    const before = fake.chatRequests.length
    await new Promise(resolve => setTimeout(resolve, 500))
    t.equal(fake.chatRequests.length, before, 'nothing sent while offline')
    await context.setOffline(false)
    await page.getByTestId('queue').waitFor({ state: 'detached' })
    await new Promise(resolve => setTimeout(resolve, 2500)) // a duplicate would have time to arrive
    t.equal(fake.chatRequests.length, before + 1, 'sent once: one model call')
  })

  await t.test('an upload cut off after the service answered is retried with its Idempotency-Key: no second model call', async t => {
    const before = fake.chatRequests.length
    let cut = false
    await page.route('**/graphql', async route => {
      if (cut || !String(route.request().headers()['content-type']).startsWith('multipart/')) return await route.fallback()
      cut = true
      await route.fetch() // the service receives it all and answers...
      await route.abort('connectionreset') // ...and the phone never hears it
    })
    const replayed: string[] = []
    page.on('response', response => { if (response.url().endsWith('/graphql')) replayed.push(response.headers()['idempotency-replayed'] ?? '') })
    const uploadsBefore = uploads.length
    await pick(page, 'IMG_0004.jpg')
    await page.getByTestId('result').waitFor({ timeout: 15_000 })
    t.ok(cut, 'the first attempt was cut off')
    t.equal(fake.chatRequests.length, before + 1, 'one model call for two sends')
    const sends = uploads.slice(uploadsBefore)
    t.equal(sends.length, 2, 'sent twice')
    t.equal(sends[0]?.key, sends[1]?.key, 'with the same Idempotency-Key')
    t.ok(replayed.includes('true'), 'the second was answered as a replay')
    await page.unroute('**/graphql')
  })

  t.strictSame(errors, [], 'no page error, console error or CSP violation')
  t.strictSame(external, [], 'nothing requested off loopback')
  t.comment(`screenshots: ${screenshotDir()}`)
})

t.test('the queue: a photo cancelled while another is sent is not sent; refused credentials keep photos queued for that key', { timeout: 90_000 }, async t => {
  const browser = await launchChromium(t)
  const context = await browser.newContext(PHONE)
  context.setDefaultTimeout(WAIT_MS)
  const page = await context.newPage()
  const errors = await watchErrors(page)
  await signIn(page)

  // The first upload is held at the network until released; meanwhile a second photo is queued, then cancelled.
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  let multipart = 0
  await page.route('**/graphql', async route => {
    if (!String(route.request().headers()['content-type']).startsWith('multipart/')) return await route.fallback()
    if (multipart++ === 0) await held
    await route.fallback()
  })
  const before = fake.chatRequests.length
  await pick(page, 'first.jpg')
  const queue = page.getByTestId('queue')
  await queue.waitFor()
  await pick(page, 'second.jpg')
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=queue] li').length === 2)
  await queue.locator('li').nth(1).locator('button').click()
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=queue] li').length === 1)
  release()
  await queue.waitFor({ state: 'detached' })
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal(fake.chatRequests.length, before + 1, 'only the first photo reached the model')
  t.equal(multipart, 1, 'the cancelled one was never sent')
  await page.unroute('**/graphql')

  // A key the service refuses (revoked, mistyped): the photo stays queued, the user is told to sign in again.
  await page.locator('header button').click() // sign out
  await page.locator('#api-key').fill('agv_not-a-key-the-service-knows')
  await page.locator('form button[type=submit]').click()
  await page.locator('.capture').waitFor()
  await pick(page, 'third.jpg')
  await page.getByRole('alert').waitFor()
  t.match(await page.getByRole('alert').innerText(), /sign in again/i)
  t.equal(await queue.locator('li').count(), 1, 'the photo waits in the queue')
  t.equal(fake.chatRequests.length, before + 1, 'and nothing reached the model')
  // It is that key's photo: another key never sends it (test/webapp-queue-owner.test.ts); sign-out asks, here discard.
  await page.locator('header button').click()
  await page.getByTestId('sign-out-dialog').locator('button[data-choice=discard]').click()
  await page.locator('#api-key').waitFor()
  await signIn(page)
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal(await queue.count(), 0, 'discarded: nothing waits')
  t.equal(fake.chatRequests.length, before + 1, 'and nothing was sent with the right key')
  t.strictSame(errors, [])
})

t.test('English interface, and a SIMULATED answer says so', { timeout: 60_000 }, async t => {
  const { buildTestApp } = await import('./helper.ts')
  const simulated = await buildTestApp(t)
  const origin = await simulated.listen({ host: '127.0.0.1', port: 0 })
  const browser = await launchChromium(t)
  const context = await browser.newContext({ ...PHONE, locale: 'en-GB' })
  context.setDefaultTimeout(WAIT_MS)
  const page = await context.newPage()
  const errors = await watchErrors(page)
  await page.goto(origin)
  await page.locator('.capture').waitFor() // AUTH_MODE=none: no sign-in
  t.equal(await page.locator('html').getAttribute('lang'), 'en')
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator('label.button').nth(1).click()])
  await chooser.setFiles({ name: 'gallery.jpg', mimeType: 'image/jpeg', buffer: await sharp({ create: { width: 1200, height: 900, channels: 3, background: '#4a7' } }).jpeg().toBuffer() })
  const card = page.getByTestId('result')
  await card.waitFor()
  t.match(await card.locator('.simulated').innerText(), /SIMULATED: no model was asked/, 'the card says the answer is simulated')
  t.match(await card.getByTestId('looks').innerText(), /^One look \(LOW detail\)$/, 'ADAPTIVE: the simulated backend "sees" a 1200×900 photo at LOW')
  await page.locator('header select').selectOption('ru')
  t.match(await page.locator('.capture h2').innerText(), /Сфотографируйте/, 'switched to Russian')
  t.equal(await page.locator('html').getAttribute('lang'), 'ru', 'the page\'s language changes with its text')
  t.strictSame(errors, [])
})

async function waitForThumbnails (count: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'x-api-key': KEY }, payload: { query: '{ identifications(first: 10) { edges { node { thumbnailUrl } } } }' } })
    const edges = res.json().data?.identifications?.edges ?? []
    if (edges.filter((e: { node: { thumbnailUrl: string | null } }) => e.node.thumbnailUrl !== null).length >= count) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error('no thumbnail within 10 s')
}
