// The service worker: the app shell (page, scripts, styles, icons) is cached at install so the app opens with
// no signal; everything else (the API, thumbnails, the config) goes to the network as if there were no worker.
// Photos waiting for a connection live in IndexedDB (queue.ts), not here; API answers are never cached.
const sw = self as unknown as ServiceWorkerGlobalScope
/** Written by web/build.ts: the shell's files and a version that changes with them. */
declare const SHELL: { version: string, files: string[] }

const CACHE = `agrivision-shell-${SHELL.version}`
const shell = new Set(SHELL.files)

sw.addEventListener('install', (event: ExtendableEvent) => {
  event.waitUntil(caches.open(CACHE).then(async cache => { await cache.addAll(SHELL.files) }).then(async () => { await sw.skipWaiting() }))
})

sw.addEventListener('activate', (event: ExtendableEvent) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith('agrivision-shell-') && name !== CACHE) await caches.delete(name)
    await sw.clients.claim()
  })())
})

sw.addEventListener('fetch', (event: FetchEvent) => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== sw.location.origin) return
  if (request.mode === 'navigate' && url.pathname === '/') {
    // The page: fresh when online (a new version), the cached shell when not.
    event.respondWith(fetch(request).catch(async () => (await caches.match('/', { cacheName: CACHE })) ?? Response.error()))
    return
  }
  if (shell.has(url.pathname)) {
    event.respondWith((async () => (await caches.match(url.pathname, { cacheName: CACHE })) ?? await fetch(request))())
  }
})
