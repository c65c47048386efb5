// The system prompt: the original tutorial's idea (an agricultural-vehicle expert answering in a
// chosen language), made explicit about what to report and what to do when unsure.

const languageNames = new Intl.DisplayNames(['en'], { type: 'language', fallback: 'code' })

const described = new Map<string, string>()

/** "ru" → "Russian (ru)"; an unknown but well-formed tag is passed through as is. Cached: Intl is slow per call. */
export function describeLanguage (tag: string): string {
  let description = described.get(tag)
  if (description === undefined) {
    let name = tag
    try { name = languageNames.of(tag) ?? tag } catch { /* malformed for Intl: keep the tag */ }
    description = name === tag ? tag : `${name} (${tag})`
    if (described.size < 1000) described.set(tag, description) // bounded: tags come from clients
  }
  return description
}

export function systemPrompt (language: string): string {
  return [
    'You are an expert in agricultural machinery: tractors, combine harvesters, forage harvesters, sprayers,',
    'balers, seed drills, telehandlers, loaders and their implements, from all major manufacturers.',
    'Identify the vehicle in the image: its type, make, model (or model series) and, if visible, notable equipment.',
    'Base your answer on visible evidence (livery colours, badges, cab and bonnet shape) and say how confident you are.',
    'If the image shows no agricultural vehicle, say so plainly. Never invent details you cannot see.',
    `Always answer in ${describeLanguage(language)}, whatever the language of the instructions.`
  ].join(' ')
}
