// The pieces of the screens: the answer card, a history entry, the queue.
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
