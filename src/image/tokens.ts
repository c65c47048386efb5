// What GPT-4o looks at, by OpenAI's published tile rule (https://platform.openai.com/docs/guides/images-vision):
// low detail: a 512×512 view, 85 tokens. high detail: fit within 2048×2048, then the short side at
// most 768, then 170 tokens per 512×512 tile plus 85. `auto` is estimated as high: the worst case.

export type ImageDetail = 'auto' | 'high' | 'low'

/**
 * What a caller may ask for: a detail the pipeline makes, or 'adaptive' (a LOW look first, a HIGH one only when
 * unsure: src/identification/adaptive.ts). Never reaches targetSize, estimateImageTokens or the pipeline.
 */
export type RequestedDetail = ImageDetail | 'adaptive'

/** The detail an answer came from, as the API spells it (Identification.detailUsed). */
export type UsedDetail = Uppercase<ImageDetail>

export interface Size { width: number, height: number }

/** The size the model would downscale to; never larger than the input. */
export function targetSize (width: number, height: number, detail: ImageDetail): Size {
  let scale = detail === 'low'
    ? Math.min(1, 512 / Math.max(width, height))
    : Math.min(1, 2048 / Math.max(width, height))
  if (detail !== 'low') scale *= Math.min(1, 768 / Math.min(width * scale, height * scale))
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) }
}

export function estimateImageTokens (width: number, height: number, detail: ImageDetail): number {
  if (detail === 'low') return 85
  const { width: w, height: h } = targetSize(width, height, 'high')
  return 85 + 170 * Math.ceil(w / 512) * Math.ceil(h / 512)
}
