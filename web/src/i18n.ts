// The interface's words in Russian and English, chosen from the browser and switchable (kept in localStorage).
import type { VehicleCategory } from './generated/schema-types.ts'

export type Lang = 'ru' | 'en'

const en = {
  title: 'agrivision',
  tagline: 'Photograph a vehicle: get what it is.',
  signInTitle: 'Sign in',
  apiKey: 'API key',
  apiKeyHint: 'Kept in this tab only: gone when the tab closes.',
  useKey: 'Use this key',
  signInMicrosoft: 'Sign in with Microsoft',
  signOut: 'Sign out',
  takePhoto: 'Take a photo',
  pickPhoto: 'Choose from gallery',
  dropHere: 'or drop a photo here',
  instructions: 'Instructions (optional)',
  answerLanguage: 'Answer language',
  send: 'Identify',
  preparing: 'Preparing the photo…',
  sending: 'Sending…',
  saved: (from: string, to: string, percent: number) => `${from} → ${to} (${percent} % smaller)`,
  offlineQueued: 'No connection: the photo waits here and is sent once the connection is back.',
  signInAgain: 'The service refused the sign-in: sign in again with the same key or account; the photo waits here for it.',
  signOutTitle: 'Photos not sent yet',
  signOutWaiting: (n: number) => `${n === 1 ? '1 photo you took has' : `${n} photos you took have`} not been sent yet.`,
  signOutExplain: 'Kept, they stay on this phone for you and are sent when you sign in again with the same key or account. Nobody else who signs in here sees or sends them.',
  keepAndSignOut: 'Keep them for me and sign out',
  discardAndSignOut: 'Discard them and sign out',
  staySignedIn: 'Stay signed in',
  unownedTitle: 'Photos from an earlier version',
  unownedExplain: (n: number) => `${n === 1 ? '1 photo waits' : `${n} photos wait`} on this phone from an earlier version of the app, which did not record who took them. They are not sent until you choose: send them as yourself only if you took them.`,
  claimUnowned: 'They are mine: send them',
  discardUnowned: 'Discard them',
  queue: 'Waiting to be sent',
  cancel: 'Cancel',
  retry: 'Try again',
  result: 'Answer',
  simulated: 'SIMULATED: no model was asked. This is a stand-in answer for testing.',
  confidence: 'Confidence',
  evidence: 'What shows it',
  looks: (looks: number, detail: string) => looks > 1 ? `Looked twice: a quick look, then a close one (${detail} detail)` : `One look (${detail} detail)`,
  noVehicle: 'No agricultural vehicle recognised.',
  history: 'History',
  allCategories: 'All categories',
  fromDate: 'From',
  toDate: 'To',
  delete: 'Delete',
  loadMore: 'Loading more…',
  empty: 'Nothing yet.',
  interfaceLanguage: 'Interface language',
  error: 'Something went wrong',
  confidenceLevel: { HIGH: 'high', MEDIUM: 'medium', LOW: 'low' } as Record<string, string>,
  live: 'new'
}

const ru: typeof en = {
  title: 'agrivision',
  tagline: 'Сфотографируйте технику — узнайте, что это.',
  signInTitle: 'Вход',
  apiKey: 'API-ключ',
  apiKeyHint: 'Хранится только в этой вкладке и исчезает при её закрытии.',
  useKey: 'Войти с ключом',
  signInMicrosoft: 'Войти через Microsoft',
  signOut: 'Выйти',
  takePhoto: 'Сфотографировать',
  pickPhoto: 'Выбрать из галереи',
  dropHere: 'или перетащите фото сюда',
  instructions: 'Пояснения (необязательно)',
  answerLanguage: 'Язык ответа',
  send: 'Определить',
  preparing: 'Готовим фото…',
  sending: 'Отправка…',
  saved: (from: string, to: string, percent: number) => `${from} → ${to} (меньше на ${percent} %)`,
  offlineQueued: 'Нет связи: фото подождёт здесь и уйдёт, когда связь вернётся.',
  signInAgain: 'Сервис не принял вход: войдите снова с тем же ключом или учётной записью; фото подождёт здесь.',
  signOutTitle: 'Фото ещё не отправлены',
  signOutWaiting: (n: number) => `Не отправлено ваших фото: ${n}.`,
  signOutExplain: 'Если их оставить, они останутся на этом телефоне для вас и уйдут, когда вы снова войдёте с тем же ключом или учётной записью. Никто другой, кто войдёт здесь, их не увидит и не отправит.',
  keepAndSignOut: 'Оставить для меня и выйти',
  discardAndSignOut: 'Удалить их и выйти',
  staySignedIn: 'Не выходить',
  unownedTitle: 'Фото из прежней версии',
  unownedExplain: (n: number) => `На этом телефоне ждут отправки фото из прежней версии приложения (${n}), которая не записывала, кто их снял. Они не уйдут, пока вы не решите: отправляйте их от своего имени, только если снимали их вы.`,
  claimUnowned: 'Это мои: отправить',
  discardUnowned: 'Удалить их',
  queue: 'Ждут отправки',
  cancel: 'Отменить',
  retry: 'Повторить',
  result: 'Ответ',
  simulated: 'СИМУЛЯЦИЯ: модель не спрашивали. Это тестовый ответ-заглушка.',
  confidence: 'Уверенность',
  evidence: 'Признаки',
  looks: (looks: number, detail: string) => looks > 1 ? `Два взгляда: быстрый, затем внимательный (детализация ${detail})` : `Один взгляд (детализация ${detail})`,
  noVehicle: 'Сельхозтехника не распознана.',
  history: 'История',
  allCategories: 'Все категории',
  fromDate: 'С',
  toDate: 'По',
  delete: 'Удалить',
  loadMore: 'Загружаем ещё…',
  empty: 'Пока пусто.',
  interfaceLanguage: 'Язык интерфейса',
  error: 'Что-то пошло не так',
  confidenceLevel: { HIGH: 'высокая', MEDIUM: 'средняя', LOW: 'низкая' },
  live: 'новое'
}

export type Strings = typeof en
export const STRINGS: Record<Lang, Strings> = { en, ru }

// Keyed by the SDL's VehicleCategory: a category added to the schema fails tsc here until it has a name and an icon.
export const CATEGORY_NAMES: Record<Lang, Record<VehicleCategory, string>> = {
  en: {
    TRACTOR: 'Tractor',
    COMBINE_HARVESTER: 'Combine harvester',
    FORAGE_HARVESTER: 'Forage harvester',
    SELF_PROPELLED_SPRAYER: 'Self-propelled sprayer',
    WINDROWER: 'Windrower',
    COTTON_HARVESTER: 'Cotton harvester',
    SUGARCANE_HARVESTER: 'Sugarcane harvester',
    ROOT_CROP_HARVESTER: 'Root crop harvester',
    LOADER_TELEHANDLER: 'Loader / telehandler',
    UTILITY_VEHICLE: 'Utility vehicle',
    TILLAGE_IMPLEMENT: 'Tillage implement',
    PLANTER_SEEDER: 'Planter / seeder',
    FERTILIZER_SPREADER: 'Fertilizer spreader',
    SLURRY_MANURE_APPLICATOR: 'Slurry / manure applicator',
    TRAILED_SPRAYER: 'Trailed sprayer',
    BALER_HAY_TOOL: 'Baler / hay tool',
    TRAILER_GRAIN_CART: 'Trailer / grain cart',
    FEEDER_MIXER: 'Feeder mixer',
    IRRIGATION_SYSTEM: 'Irrigation system',
    OTHER: 'Other'
  },
  ru: {
    TRACTOR: 'Трактор',
    COMBINE_HARVESTER: 'Зерноуборочный комбайн',
    FORAGE_HARVESTER: 'Кормоуборочный комбайн',
    SELF_PROPELLED_SPRAYER: 'Самоходный опрыскиватель',
    WINDROWER: 'Валковая жатка',
    COTTON_HARVESTER: 'Хлопкоуборочная машина',
    SUGARCANE_HARVESTER: 'Тростниковый комбайн',
    ROOT_CROP_HARVESTER: 'Корнеклубнеуборочный комбайн',
    LOADER_TELEHANDLER: 'Погрузчик / телескоп',
    UTILITY_VEHICLE: 'Хозяйственный автомобиль',
    TILLAGE_IMPLEMENT: 'Почвообрабатывающее орудие',
    PLANTER_SEEDER: 'Сеялка / сажалка',
    FERTILIZER_SPREADER: 'Разбрасыватель удобрений',
    SLURRY_MANURE_APPLICATOR: 'Навозоразбрасыватель',
    TRAILED_SPRAYER: 'Прицепной опрыскиватель',
    BALER_HAY_TOOL: 'Пресс-подборщик / сенная техника',
    TRAILER_GRAIN_CART: 'Прицеп / бункер-перегрузчик',
    FEEDER_MIXER: 'Кормосмеситель',
    IRRIGATION_SYSTEM: 'Оросительная система',
    OTHER: 'Другое'
  }
}

/** One icon per VehicleCategory: emoji render on every phone with no image to load. */
export const CATEGORY_ICONS: Record<VehicleCategory, string> = {
  TRACTOR: '🚜',
  COMBINE_HARVESTER: '🌾',
  FORAGE_HARVESTER: '🌿',
  SELF_PROPELLED_SPRAYER: '💧',
  WINDROWER: '🌱',
  COTTON_HARVESTER: '☁️',
  SUGARCANE_HARVESTER: '🎋',
  ROOT_CROP_HARVESTER: '🥔',
  LOADER_TELEHANDLER: '🏗️',
  UTILITY_VEHICLE: '🛻',
  TILLAGE_IMPLEMENT: '⛏️',
  PLANTER_SEEDER: '🌰',
  FERTILIZER_SPREADER: '🧂',
  SLURRY_MANURE_APPLICATOR: '🪣',
  TRAILED_SPRAYER: '🚿',
  BALER_HAY_TOOL: '🧺',
  TRAILER_GRAIN_CART: '🚛',
  FEEDER_MIXER: '🐄',
  IRRIGATION_SYSTEM: '💦',
  OTHER: '❓'
}

export const CATEGORIES = Object.keys(CATEGORY_ICONS) as VehicleCategory[]

export function browserLanguage (): Lang {
  const saved = localStorage.getItem('agrivision.lang')
  if (saved === 'ru' || saved === 'en') return saved
  return (navigator.languages ?? [navigator.language]).some(tag => tag.toLowerCase().startsWith('ru')) ? 'ru' : 'en'
}

export function formatBytes (bytes: number, lang: Lang): string {
  const units = lang === 'ru' ? ['Б', 'КБ', 'МБ'] : ['B', 'KB', 'MB']
  if (bytes < 1024) return `${bytes} ${units[0]}`
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} ${units[1]}`
  return `${(bytes / 1024 / 1024).toFixed(1)} ${units[2]}`
}
