// Entry: read the service's public config (auth modes, Entra SPA settings), render, register the service worker.
import { render } from 'preact'
import { App } from './app.tsx'
import type { AppConfig } from './auth.ts'

async function start (): Promise<void> {
  const root = document.getElementById('app') as HTMLElement
  let config: AppConfig
  try {
    config = await (await fetch('/app-config.json')).json() as AppConfig
    localStorage.setItem('agrivision.config', JSON.stringify(config))
  } catch {
    // Opened offline from the cached shell: the last config seen (nothing secret in it); the queue waits for the network.
    config = JSON.parse(localStorage.getItem('agrivision.config') ?? 'null') as AppConfig | null ??
      { auth: { anonymous: false, apiKey: true, entra: null } }
  }
  render(<App config={config} />, root)
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {})
}

void start()
