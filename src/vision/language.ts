// The answer's language: VISION_LANGUAGE and a request's `language` argument are checked against the same tag shape.

/** A BCP-47-like tag: a 2–3 letter language, then up to three subtags (script, region, variant). */
export const LANGUAGE_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/
