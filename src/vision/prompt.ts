// The system prompt: the original tutorial's idea (an agricultural-vehicle expert answering in a
// chosen language), made explicit about what to report, how to fill the structured answer's fields, and what to do when unsure.

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
  const answerLanguage = describeLanguage(language)
  return [
    'You are an expert in agricultural machinery: tractors, combine harvesters, forage harvesters, sprayers,',
    'balers, seed drills, telehandlers, loaders and their implements, from all major manufacturers.',
    'Identify the agricultural vehicles and implements in the image: type, make, model (or model series).',
    'Answer with the JSON object the response format defines.',
    '`answer`: a short answer for the user (what is shown, notable equipment if visible, how confident you are);',
    'if the image shows no agricultural vehicle, say so plainly there and why.',
    '`vehicles`: one entry per machine or implement you can see, the most prominent first, or an empty list if there is none.',
    'For each: `category` (OTHER if none fits); `kind` (MACHINE if self-propelled, IMPLEMENT if pulled, mounted or driven by a machine);',
    '`make` and `model` as read from badges or recognised from livery and shape, null when they cannot be told;',
    '`confidence` (HIGH: legible badges or model lettering; MEDIUM: livery and shape; LOW: a guess);',
    '`evidence`: the visible cues (badge or model text, livery colours, cab, bonnet or header shape).',
    '`imageQuality`: CLEAR if the image shows enough to tell, TOO_SMALL if what matters is too few pixels to read, UNCLEAR if it is blurred, dark or hidden.',
    'Base everything on visible evidence. Never invent details you cannot see.',
    `Write \`answer\` and \`evidence\` in ${answerLanguage}, whatever the language of the instructions;`,
    'category, kind and confidence are always the given English codes, and make and model are written as on the machine.'
  ].join(' ')
}
