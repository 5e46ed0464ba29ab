// One catalog of application errors: a stable code, its HTTP status and a human title.
export const ERRORS = {
  VALIDATION_FAILED: { status: 400, title: 'The request is not valid' },
  CSRF_FAILED: { status: 403, title: 'This form expired' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  EMAIL_TAKEN: { status: 409, title: 'An account with this email already exists' },
  USERNAME_TAKEN: { status: 409, title: 'This username is taken' },
  CLIENT_NOT_FOUND: { status: 404, title: 'No such client' },
  USER_NOT_FOUND: { status: 404, title: 'No such user' },
  APP_NAME_TAKEN: { status: 409, title: 'You already have an app with this name' },
  CONNECTION_NOT_FOUND: { status: 404, title: 'No such connection' },
  CONNECTION_SLUG_TAKEN: { status: 409, title: 'A connection with this slug already exists' },
  API_INDICATOR_TAKEN: { status: 409, title: 'An API with this indicator is registered already' },
  CONNECTION_KEY_MISSING: { status: 409, title: 'This server has no key to encrypt upstream client secrets: set CONNECTION_SECRET_KEYS' },
  LAST_SIGN_IN_METHOD: { status: 409, title: 'This is your last way to sign in; set a password or link another account first' },
  LAST_ADMIN: { status: 409, title: 'This is the last active admin; make another admin first' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  TOO_MANY_ATTEMPTS: { status: 429, title: 'Too many failed attempts; try again later' },
  TOO_MANY_REQUESTS: { status: 429, title: 'Too many requests; try again later' },
  WEAK_PASSWORD: { status: 400, title: 'Choose a stronger password' },
  INVALID_TOKEN: { status: 400, title: 'This link or token is invalid, expired or already used' },
  INVALID_CREDENTIALS: { status: 401, title: 'The email, username or password is not correct' },
  EMAIL_NOT_VERIFIED: { status: 403, title: 'Confirm your email address before signing in' },
  UNAUTHENTICATED: { status: 401, title: 'A valid access token is required' },
  FORBIDDEN: { status: 403, title: 'You are not allowed to do this' },
  RECENT_SIGN_IN_REQUIRED: { status: 403, title: 'Sign in again to do this' },
  REGISTRATION_CLOSED: { status: 403, title: 'Registration is closed' },
  INTERNAL: { status: 500, title: 'Something went wrong on our side' },
  SERVICE_UNAVAILABLE: { status: 503, title: 'The service cannot answer for a moment; try again shortly' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export type FieldError = { path: string; message: string };

export class AppError extends Error {
  readonly status: number;
  readonly title: string;
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    readonly errors?: FieldError[],
    /** Seconds until a throttled caller may retry (sent as Retry-After). */
    readonly retryAfter?: number,
  ) {
    super(detail ?? ERRORS[code].title);
    this.status = ERRORS[code].status;
    this.title = ERRORS[code].title;
  }
}

/** RFC 9457 problem document for an AppError. */
export function toProblem(err: AppError, instance?: string) {
  return {
    type: `about:blank`,
    title: err.title,
    status: err.status,
    code: err.code,
    ...(err.detail ? { detail: err.detail } : {}),
    ...(instance ? { instance } : {}),
    ...(err.errors ? { errors: err.errors } : {}),
  };
}

/** Retry-After of a 503 for a database that cannot serve now. */
export const UNAVAILABLE_RETRY_SECONDS = 5;

/** The answer for a database that cannot serve now (see databaseUnavailable): try again shortly. */
export const serviceUnavailable = () => new AppError('SERVICE_UNAVAILABLE', undefined, undefined, UNAVAILABLE_RETRY_SECONDS);
