// Builds the field app into web/dist (run by `npm run build:web`, and by npm ci through `prepare`):
// esbuild bundles the Preact + TypeScript sources (MSAL split into a chunk loaded only on Entra sign-in),
// sharp draws the icons, and the service worker gets the list of the app shell's files.
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'
import sharp from 'sharp'

const root = import.meta.dirname
const dist = join(root, 'dist')

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">
  <rect width="512" height="512" rx="96" fill="#2f6b1f"/>
  <circle cx="170" cy="350" r="80" fill="none" stroke="#fff" stroke-width="36"/>
  <circle cx="370" cy="375" r="50" fill="none" stroke="#fff" stroke-width="30"/>
  <path d="M120 270 L160 150 H290 L320 250 H400 L420 330" fill="none" stroke="#fff" stroke-width="32" stroke-linejoin="round"/>
</svg>`

export interface BuildResult {
  /** Gzipped bytes of the JavaScript the first screen loads (the entry and its static imports). */
  firstScreenJsGzip: number
  files: string[]
}

export async function buildWeb (): Promise<BuildResult> {
  await rm(dist, { recursive: true, force: true })
  await mkdir(join(dist, 'icons'), { recursive: true })

  const app = await esbuild.build({
    entryPoints: { app: join(root, 'src/main.tsx'), style: join(root, 'src/app.css') },
    bundle: true,
    splitting: true,
    format: 'esm',
    target: ['es2022', 'chrome109', 'safari16'],
    minify: true,
    sourcemap: false,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: join(dist, 'assets'),
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning'
  })
  const outputs = Object.entries(app.metafile.outputs)
  const entry = outputs.find(([, output]) => output.entryPoint?.endsWith('main.tsx'))
  const css = outputs.find(([name]) => name.endsWith('.css'))
  if (entry === undefined || css === undefined) throw new Error('esbuild produced no entry or stylesheet')
  const publicPath = (file: string) => '/' + file.slice(file.indexOf('dist/') + 'dist/'.length)

  // The first screen: the entry and what it imports statically (MSAL's chunk is a dynamic import).
  const firstScreen = new Set<string>()
  const visit = (file: string): void => {
    if (firstScreen.has(file)) return
    firstScreen.add(file)
    for (const imported of app.metafile.outputs[file]?.imports ?? []) if (imported.kind === 'import-statement') visit(imported.path)
  }
  visit(entry[0])
  let firstScreenJsGzip = 0
  for (const file of firstScreen) firstScreenJsGzip += gzipSync(await readFile(file)).length

  // The first screen's chunks and its config are asked for with the page, not one after another.
  const preloads = [...firstScreen].filter(file => file !== entry[0])
    .map(file => `  <link rel="modulepreload" href="${publicPath(file)}">`)
    .concat('  <link rel="preload" href="/app-config.json" as="fetch" crossorigin="anonymous">')
  const template = await readFile(join(root, 'index.html'), 'utf8')
  await writeFile(join(dist, 'index.html'),
    template.replace('/assets/%CSS%', publicPath(css[0])).replace('/assets/%JS%', publicPath(entry[0]))
      .replace('  <!-- preloads -->', preloads.join('\n')))

  for (const size of [192, 512]) {
    await sharp(Buffer.from(ICON)).resize(size, size).png().toFile(join(dist, 'icons', `icon-${size}.png`))
  }
  await writeFile(join(dist, 'manifest.webmanifest'), JSON.stringify({
    name: 'agrivision',
    short_name: 'agrivision',
    description: 'Photograph an agricultural vehicle and get what it is.',
    start_url: '/',
    scope: '/',
    display: 'standalone',
    background_color: '#f3f5ef',
    theme_color: '#2f6b1f',
    icons: [
      { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any maskable' },
      { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any maskable' }
    ]
  }, null, 2))

  const shell = ['/', '/manifest.webmanifest', '/icons/icon-192.png', '/icons/icon-512.png', publicPath(css[0]),
    ...[...firstScreen].map(publicPath)]
  const version = createHash('sha256').update(shell.join('\n')).digest('hex').slice(0, 12)
  await esbuild.build({
    entryPoints: [join(root, 'src/sw.ts')],
    bundle: true,
    format: 'iife',
    minify: true,
    target: 'es2022',
    outfile: join(dist, 'sw.js'),
    define: { SHELL: JSON.stringify({ version, files: shell }) },
    logLevel: 'warning'
  })
  await writeFile(join(dist, 'build.json'), JSON.stringify({ firstScreenJsGzip, shell }, null, 2))
  return { firstScreenJsGzip, files: shell }
}

if (import.meta.main) {
  const { firstScreenJsGzip, files } = await buildWeb()
  console.log(`web/dist: ${files.length} shell files; first-screen JavaScript ${(firstScreenJsGzip / 1024).toFixed(1)} KB gzipped`)
}
