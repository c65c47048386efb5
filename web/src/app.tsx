// The field app: sign in, photograph, see the answer, browse the history. Only the public GraphQL API.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks'
import { ApiError, deleteIdentification, historyPage, type HistoryFilter, type Identification } from './api.ts'
import { anonymous, apiKeyCredentials, entraCredentials, savedApiKey, signInWithEntra, type AppConfig, type Credentials } from './auth.ts'
import { HistoryItem, QueueList, ResultCard, SignOutDialog, UnownedPhotos } from './components.tsx'
import { prepareForUpload } from './downscale.ts'
import { browserLanguage, CATEGORIES, CATEGORY_NAMES, formatBytes, STRINGS, type Lang, type Strings } from './i18n.ts'
import { subscribeToIdentifications } from './live.ts'
import { claimUnowned, discardOwned, discardUnowned, queued, unowned, type QueuedPhoto } from './queue.ts'
import { newKey, Sender } from './sender.ts'

const ANSWER_LANGUAGES = ['ru', 'en', 'uk', 'kk', 'de', 'fr', 'pl', 'es', 'pt-BR']

export function App ({ config }: { config: AppConfig }) {
  const [lang, setLang] = useState<Lang>(browserLanguage)
  const [credentials, setCredentials] = useState<Credentials | null | undefined>(undefined)
  const [screen, setScreen] = useState<'capture' | 'history'>('capture')
  /** Photos of the signed-in user still waiting when they asked to sign out: the question is open. */
  const [leaving, setLeaving] = useState(0)
  const [signingOut, setSigningOut] = useState(false)
  const t = STRINGS[lang]

  // In the same commit as the text (not after paint): a screen reader never reads Russian text as English.
  useLayoutEffect(() => { document.documentElement.lang = lang; localStorage.setItem('agrivision.lang', lang) }, [lang])
  useEffect(() => {
    void (async () => {
      const saved = await savedApiKey() ?? await entraCredentials(config).catch(() => null)
      setCredentials(saved ?? (config.auth.anonymous ? anonymous : null))
    })()
  }, [])

  // Sign-out: the photos this user queued are theirs. Asked whether to keep them (for this user only) or discard them.
  async function askSignOut (current: Credentials): Promise<void> {
    const waiting = (await queued(current.owner)).length
    if (waiting === 0) await signOut(current, false)
    else setLeaving(waiting)
  }

  async function signOut (current: Credentials, discard: boolean): Promise<void> {
    setLeaving(0)
    setSigningOut(true) // the capture screen goes, and its Sender stops with it: nothing more is sent as this user
    try {
      if (discard) await discardOwned(current.owner)
      await current.signOut()
      setCredentials(null)
    } finally {
      setSigningOut(false)
    }
  }

  if (credentials === undefined || signingOut) return <main class='loading' aria-busy='true' />
  return (
    <>
      <header>
        <h1>{t.title}</h1>
        <label class='lang'>
          <span class='visually-hidden'>{t.interfaceLanguage}</span>
          <select value={lang} onChange={event => { setLang((event.target as HTMLSelectElement).value as Lang) }}>
            <option value='ru'>Русский</option>
            <option value='en'>English</option>
          </select>
        </label>
        {credentials !== null && credentials.kind !== 'anonymous' && (
          <button type='button' class='secondary' data-testid='sign-out' onClick={() => { void askSignOut(credentials) }}>
            {t.signOut}
          </button>
        )}
      </header>
      {leaving > 0 && credentials !== null && (
        <SignOutDialog
          waiting={leaving} t={t}
          onKeep={() => { void signOut(credentials, false) }}
          onDiscard={() => { void signOut(credentials, true) }}
          onStay={() => { setLeaving(0) }}
        />
      )}
      {credentials === null
        ? <SignIn config={config} t={t} onSignedIn={setCredentials} />
        : (
          <>
            <nav aria-label={t.title}>
              <button type='button' aria-current={screen === 'capture' ? 'page' : undefined} onClick={() => { setScreen('capture') }}>{t.takePhoto}</button>
              <button type='button' aria-current={screen === 'history' ? 'page' : undefined} onClick={() => { setScreen('history') }}>{t.history}</button>
            </nav>
            <main>
              <Capture credentials={credentials} t={t} lang={lang} hidden={screen !== 'capture'} />
              {screen === 'history' && <History credentials={credentials} t={t} lang={lang} />}
            </main>
          </>
          )}
    </>
  )
}

function SignIn ({ config, t, onSignedIn }: { config: AppConfig, t: Strings, onSignedIn: (credentials: Credentials) => void }) {
  const [key, setKey] = useState('')
  return (
    <main>
      <section class='card' aria-labelledby='sign-in-title'>
        <h2 id='sign-in-title'>{t.signInTitle}</h2>
        <p>{t.tagline}</p>
        {config.auth.apiKey && (
          <form onSubmit={event => { event.preventDefault(); if (key.trim()) void apiKeyCredentials(key.trim()).then(onSignedIn) }}>
            <label for='api-key'>{t.apiKey}</label>
            <input id='api-key' type='password' autocomplete='off' value={key} onInput={event => { setKey((event.target as HTMLInputElement).value) }} />
            <p class='hint'>{t.apiKeyHint}</p>
            <button type='submit'>{t.useKey}</button>
          </form>
        )}
        {config.auth.entra !== null && (
          <button type='button' onClick={() => { void signInWithEntra(config) }}>{t.signInMicrosoft}</button>
        )}
      </section>
    </main>
  )
}

function Capture ({ credentials, t, lang, hidden }: { credentials: Credentials, t: Strings, lang: Lang, hidden: boolean }) {
  const [instructions, setInstructions] = useState('')
  const [answerLanguage, setAnswerLanguage] = useState<string>(lang)
  const [status, setStatus] = useState<string>('')
  const [saved, setSaved] = useState<string>('')
  const [result, setResult] = useState<Identification | null>(null)
  const [error, setError] = useState<string>('')
  const [entries, setEntries] = useState<QueuedPhoto[]>([])
  const [unclaimed, setUnclaimed] = useState<QueuedPhoto[]>([])
  const [progress, setProgress] = useState<Record<string, number>>({})
  const [dragging, setDragging] = useState(false)
  const sender = useRef<Sender | null>(null)
  const latest = useRef<string | null>(null)

  useEffect(() => {
    const s = new Sender(credentials, {
      changed: setEntries,
      progress: (key, fraction) => { setProgress(p => ({ ...p, [key]: fraction })) },
      answered: (key, identification) => {
        setProgress(({ [key]: _done, ...rest }) => rest)
        if (latest.current === key) { setResult(identification); setStatus(''); setError('') }
      },
      failed: (key, err) => {
        setProgress(({ [key]: _done, ...rest }) => rest)
        if (err.needsSignIn) { setStatus(''); setError(t.signInAgain); return } // whichever photo it was: all wait
        if (latest.current !== key) return
        setStatus('')
        setError(err.retryable ? t.offlineQueued : `${t.error}: ${err.message} (${err.code})`)
      }
    })
    sender.current = s
    void queued(credentials.owner).then(setEntries)
    void unowned().then(setUnclaimed)
    void s.drain()
    return () => { s.stop() }
  }, [credentials])

  async function take (file: File | undefined): Promise<void> {
    if (file === undefined) return
    setResult(null)
    setError('')
    setStatus(t.preparing)
    try {
      const started = performance.now()
      // At the HIGH size: ADAPTIVE's second look needs it (the server makes the LOW image from it).
      const prepared = await prepareForUpload(file, 'auto')
      // User Timing, for the bench (bench/web.ts) and the browser's own performance panel.
      performance.measure('agrivision:prepare', { start: started })
      const percent = Math.max(0, Math.round(100 - prepared.photo.size / prepared.originalBytes * 100))
      setSaved(t.saved(formatBytes(prepared.originalBytes, lang), formatBytes(prepared.photo.size, lang), percent))
      const key = newKey()
      latest.current = key
      setStatus(navigator.onLine ? t.sending : t.offlineQueued)
      await sender.current?.submit({
        key, photo: prepared.photo, instructions: instructions.trim(), language: answerLanguage, detail: 'ADAPTIVE', queuedAt: Date.now(), bytes: prepared.photo.size
      })
    } catch (err) {
      setStatus('')
      setError(`${t.error}: ${err instanceof ApiError ? err.code : String(err)}`)
    }
  }

  async function settleUnowned (claim: boolean): Promise<void> {
    if (claim) await claimUnowned(credentials.owner)
    else await discardUnowned()
    setUnclaimed(await unowned())
    setEntries(await queued(credentials.owner))
    if (claim) await sender.current?.drain()
  }

  const current = latest.current === null ? undefined : progress[latest.current]
  return (
    <div hidden={hidden}>
      <section
        class={`card capture${dragging ? ' dragging' : ''}`} aria-labelledby='capture-title'
        onDragOver={event => { event.preventDefault(); setDragging(true) }}
        onDragLeave={() => { setDragging(false) }}
        onDrop={event => { event.preventDefault(); setDragging(false); void take(event.dataTransfer?.files[0]) }}
      >
        <h2 id='capture-title'>{t.tagline}</h2>
        <div class='pickers'>
          <label class='button'>
            {t.takePhoto}
            <input
              type='file' accept='image/*' capture='environment' class='visually-hidden' data-testid='camera'
              onChange={event => { void take((event.target as HTMLInputElement).files?.[0]); (event.target as HTMLInputElement).value = '' }}
            />
          </label>
          <label class='button secondary'>
            {t.pickPhoto}
            <input
              type='file' accept='image/*' class='visually-hidden' data-testid='gallery'
              onChange={event => { void take((event.target as HTMLInputElement).files?.[0]); (event.target as HTMLInputElement).value = '' }}
            />
          </label>
        </div>
        <p class='hint'>{t.dropHere}</p>
        <label for='instructions'>{t.instructions}</label>
        <textarea
          id='instructions' maxLength={2000} rows={2} value={instructions}
          onInput={event => { setInstructions((event.target as HTMLTextAreaElement).value) }}
        />
        <label for='answer-language'>{t.answerLanguage}</label>
        <select id='answer-language' value={answerLanguage} onChange={event => { setAnswerLanguage((event.target as HTMLSelectElement).value) }}>
          {ANSWER_LANGUAGES.map(tag => <option key={tag} value={tag}>{tag}</option>)}
        </select>
      </section>
      <div aria-live='polite' class='status'>
        {status && <p data-testid='status'>{status}</p>}
        {saved && <p class='saved' data-testid='saved'>{saved}</p>}
        {current !== undefined && <progress max={1} value={current} aria-label={t.sending} data-testid='progress' />}
        {error && <p class='error' role='alert'>{error}</p>}
      </div>
      {result && <ResultCard identification={result} t={t} lang={lang} />}
      <UnownedPhotos
        entries={unclaimed} t={t} lang={lang}
        onClaim={() => { void settleUnowned(true) }} onDiscard={() => { void settleUnowned(false) }}
      />
      <QueueList entries={entries} t={t} lang={lang} progress={progress} onCancel={key => { void sender.current?.cancel(key) }} />
    </div>
  )
}

function History ({ credentials, t, lang }: { credentials: Credentials, t: Strings, lang: Lang }) {
  const [filter, setFilter] = useState<HistoryFilter>({})
  const [items, setItems] = useState<Identification[]>([])
  const [fresh, setFresh] = useState<Set<string>>(new Set())
  const [cursor, setCursor] = useState<string | null>(null)
  const [more, setMore] = useState(true)
  const [error, setError] = useState('')
  const loading = useRef(false)
  /** Bumped by each new filter: a page that arrives for an older one is dropped. */
  const generation = useRef(0)
  const sentinel = useRef<HTMLLIElement>(null)

  async function load (reset: boolean): Promise<void> {
    if (reset) generation.current++
    else if (loading.current) return
    const mine = generation.current
    loading.current = true
    try {
      const page = await historyPage(credentials, filter, reset ? null : cursor)
      if (mine !== generation.current) return
      const nodes = page.edges.map(edge => edge.node)
      setItems(previous => reset ? nodes : [...previous, ...nodes.filter(node => !previous.some(p => p.id === node.id))])
      setCursor(page.pageInfo.endCursor)
      setMore(page.pageInfo.hasNextPage)
      setError('')
    } catch (err) {
      if (mine === generation.current) setError(`${t.error}: ${err instanceof ApiError ? err.code : String(err)}`)
    } finally {
      if (mine === generation.current) loading.current = false
    }
  }

  useEffect(() => { setCursor(null); setMore(true); void load(true) }, [filter.category, filter.from, filter.to])

  // Infinite scroll: the next page when the end of the list comes into view.
  useEffect(() => {
    const element = sentinel.current
    if (element === null || !more) return
    const observer = new IntersectionObserver(([entry]) => { if (entry?.isIntersecting) void load(false) })
    observer.observe(element)
    return () => { observer.disconnect() }
  }, [more, cursor])

  // Live: identifications from this phone or another device of the same caller.
  useEffect(() => subscribeToIdentifications(credentials, identification => {
    if (filter.category && !identification.vehicles.some(v => v.category === filter.category)) return
    if (filter.from && identification.createdAt < new Date(`${filter.from}T00:00:00`).toISOString()) return
    if (filter.to && identification.createdAt >= new Date(new Date(`${filter.to}T00:00:00`).getTime() + 86_400_000).toISOString()) return
    setItems(previous => previous.some(p => p.id === identification.id) ? previous : [identification, ...previous])
    setFresh(previous => new Set(previous).add(identification.id))
  }), [credentials, filter.category, filter.from, filter.to])

  async function remove (id: string): Promise<void> {
    try {
      await deleteIdentification(credentials, id)
      setItems(previous => previous.filter(item => item.id !== id))
    } catch (err) {
      setError(`${t.error}: ${err instanceof ApiError ? err.code : String(err)}`)
    }
  }

  return (
    <section class='card history' aria-labelledby='history-title'>
      <h2 id='history-title'>{t.history}</h2>
      <form class='filters' onSubmit={event => { event.preventDefault() }}>
        <label>
          <span class='visually-hidden'>{t.allCategories}</span>
          <select
            value={filter.category ?? ''} data-testid='category-filter'
            onChange={event => {
              const chosen = (event.target as HTMLSelectElement).value
              setFilter({ ...filter, category: CATEGORIES.find(category => category === chosen) })
            }}
          >
            <option value=''>{t.allCategories}</option>
            {CATEGORIES.map(category => <option key={category} value={category}>{CATEGORY_NAMES[lang][category]}</option>)}
          </select>
        </label>
        <label>{t.fromDate}
          <input type='date' value={filter.from ?? ''} onChange={event => { setFilter({ ...filter, from: (event.target as HTMLInputElement).value || undefined }) }} />
        </label>
        <label>{t.toDate}
          <input type='date' value={filter.to ?? ''} onChange={event => { setFilter({ ...filter, to: (event.target as HTMLInputElement).value || undefined }) }} />
        </label>
      </form>
      {error && <p class='error' role='alert'>{error}</p>}
      {items.length === 0 && !more && <p>{t.empty}</p>}
      <ul class='history-list' data-testid='history'>
        {items.map(item => (
          <HistoryItem
            key={item.id} identification={item} t={t} lang={lang} fresh={fresh.has(item.id)}
            onDelete={() => { void remove(item.id) }}
          />
        ))}
        {more && <li ref={sentinel} class='sentinel' aria-hidden='true'>{t.loadMore}</li>}
      </ul>
    </section>
  )
}
