// The pieces of the screens: the answer card, a history entry, the queue, the sign-out question.
import { useEffect, useRef } from 'preact/hooks'
import type { Identification } from './api.ts'
import { CATEGORY_ICONS, CATEGORY_NAMES, formatBytes, type Lang, type Strings } from './i18n.ts'
import type { QueuedPhoto } from './queue.ts'

export function ResultCard ({ identification, t, lang }: { identification: Identification, t: Strings, lang: Lang }) {
  const simulated = identification.backend === 'SIMULATED'
  return (
    <article class='card result' aria-labelledby={`result-${identification.id}`} data-testid='result'>
      <h2 id={`result-${identification.id}`}>{t.result}</h2>
      {simulated && <p class='simulated' role='note'>{t.simulated}</p>}
      {identification.vehicles.length === 0 && <p>{t.noVehicle}</p>}
      {identification.vehicles.map((vehicle, index) => (
        <section class='vehicle' key={index}>
          <p class='category'>
            <span class='icon' aria-hidden='true'>{CATEGORY_ICONS[vehicle.category] ?? CATEGORY_ICONS.OTHER}</span>
            <span>{CATEGORY_NAMES[lang][vehicle.category] ?? vehicle.category}</span>
          </p>
          {(vehicle.make ?? vehicle.model) && <p class='make'>{[vehicle.make, vehicle.model].filter(Boolean).join(' ')}</p>}
          <p>{t.confidence}: <strong>{t.confidenceLevel[vehicle.confidence] ?? vehicle.confidence}</strong></p>
          {vehicle.evidence.length > 0 && (
            <>
              <h3>{t.evidence}</h3>
              <ul>{vehicle.evidence.map((item, i) => <li key={i}>{item}</li>)}</ul>
            </>
          )}
        </section>
      ))}
      <p class='answer'>{identification.answer}</p>
      <p class='looks' data-testid='looks'>{t.looks(identification.looks, identification.detailUsed)}</p>
    </article>
  )
}

export function HistoryItem (
  { identification, t, lang, fresh, onDelete }: {
    identification: Identification, t: Strings, lang: Lang, fresh: boolean, onDelete: () => void
  }
) {
  const first = identification.vehicles[0]
  const name = first ? (CATEGORY_NAMES[lang][first.category] ?? first.category) : t.noVehicle
  const title = first ? [first.make, first.model].filter(Boolean).join(' ') : ''
  return (
    <li class='history-item' data-id={identification.id}>
      {identification.thumbnailUrl
        ? <img src={identification.thumbnailUrl} alt={`${name} ${title}`.trim()} width={64} height={64} loading='lazy' />
        : <span class='thumb-placeholder' aria-hidden='true'>{first ? CATEGORY_ICONS[first.category] : CATEGORY_ICONS.OTHER}</span>}
      <div class='history-text'>
        <p class='category'>
          <span aria-hidden='true'>{first ? CATEGORY_ICONS[first.category] : ''}</span> {name}
          {fresh && <span class='badge'>{t.live}</span>}
        </p>
        {title && <p class='make'>{title}</p>}
        <p class='date'><time dateTime={identification.createdAt}>{new Date(identification.createdAt).toLocaleString(lang)}</time></p>
      </div>
      <button type='button' class='secondary' onClick={onDelete} aria-label={`${t.delete}: ${name} ${title}`.trim()}>{t.delete}</button>
    </li>
  )
}

export function QueueList (
  { entries, t, lang, progress, onCancel }: {
    entries: QueuedPhoto[], t: Strings, lang: Lang, progress: Record<string, number>, onCancel: (key: string) => void
  }
) {
  if (entries.length === 0) return null
  return (
    <section class='card queue' aria-labelledby='queue-title' data-testid='queue'>
      <h2 id='queue-title'>{t.queue} ({entries.length})</h2>
      <ul>
        {entries.map(entry => (
          <li key={entry.key}>
            <span>{new Date(entry.queuedAt).toLocaleTimeString(lang)} · {formatBytes(entry.bytes, lang)}</span>
            {progress[entry.key] !== undefined && <progress max={1} value={progress[entry.key]} aria-label={t.sending} />}
            <button type='button' class='secondary' onClick={() => { onCancel(entry.key) }}>{t.cancel}</button>
          </li>
        ))}
      </ul>
    </section>
  )
}

/** Sign-out with photos still waiting: they are this user's; keep them for this user, or discard them. */
export function SignOutDialog (
  { waiting, t, onKeep, onDiscard, onStay }: { waiting: number, t: Strings, onKeep: () => void, onDiscard: () => void, onStay: () => void }
) {
  const dialog = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const element = dialog.current
    if (element !== null && !element.open) element.showModal()
    return () => { element?.close() }
  }, [])
  return (
    <dialog
      ref={dialog} class='card sign-out' aria-labelledby='sign-out-title' aria-describedby='sign-out-waiting' data-testid='sign-out-dialog'
      onCancel={event => { event.preventDefault(); onStay() }}
    >
      <h2 id='sign-out-title'>{t.signOutTitle}</h2>
      <p id='sign-out-waiting'>{t.signOutWaiting(waiting)}</p>
      <p>{t.signOutExplain}</p>
      <div class='choices'>
        <button type='button' data-choice='keep' onClick={onKeep}>{t.keepAndSignOut}</button>
        <button type='button' class='secondary' data-choice='discard' onClick={onDiscard}>{t.discardAndSignOut}</button>
        <button type='button' class='secondary' data-choice='stay' onClick={onStay}>{t.staySignedIn}</button>
      </div>
    </dialog>
  )
}

/** Photos queued before owners were recorded: sent only if the signed-in user says they are theirs. */
export function UnownedPhotos (
  { entries, t, lang, onClaim, onDiscard }: {
    entries: QueuedPhoto[], t: Strings, lang: Lang, onClaim: () => void, onDiscard: () => void
  }
) {
  if (entries.length === 0) return null
  return (
    <section class='card unowned' aria-labelledby='unowned-title' data-testid='unowned'>
      <h2 id='unowned-title'>{t.unownedTitle}</h2>
      <p>{t.unownedExplain(entries.length)}</p>
      <ul>
        {entries.map(entry => (
          <li key={entry.key}>{new Date(entry.queuedAt).toLocaleString(lang)} · {formatBytes(entry.bytes, lang)}</li>
        ))}
      </ul>
      <div class='choices'>
        <button type='button' data-choice='claim' onClick={onClaim}>{t.claimUnowned}</button>
        <button type='button' class='secondary' data-choice='discard' onClick={onDiscard}>{t.discardUnowned}</button>
      </div>
    </section>
  )
}
