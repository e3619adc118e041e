/**
 * Sign in and sign up.
 *
 * @module
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { api, ApiError, type User } from "../api.ts";
import { Link, navigate, safeNext } from "../router.tsx";

/** Minimum password length the API enforces. */
export const MIN_PASSWORD_LENGTH = 10;

interface AuthPageProps {
  onSignedIn: (user: User) => void;
  query: URLSearchParams;
}

/** `/signin`. */
export function SignInPage(props: AuthPageProps): JSX.Element {
  return <AuthForm mode="signin" {...props} />;
}

/** `/signup`. */
export function SignUpPage(props: AuthPageProps): JSX.Element {
  return <AuthForm mode="signup" {...props} />;
}

function AuthForm(props: AuthPageProps & { mode: "signin" | "signup" }): JSX.Element {
  const signup = props.mode === "signup";
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = props.query.get("next");
  const otherHref = `${signup ? "/signin" : "/signup"}${next ? `?next=${encodeURIComponent(next)}` : ""}`;

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    if (signup && password.length < MIN_PASSWORD_LENGTH) {
      setError(`Use at least ${MIN_PASSWORD_LENGTH} characters for your password.`);
      return;
    }
    setBusy(true);
    try {
      const user = signup
        ? await api.signup(email.trim(), password)
        : await api.login(email.trim(), password);
      props.onSignedIn(user);
      navigate(safeNext(next, "/devmode/terminal"), { replace: true });
    } catch (caught) {
      setError(describeAuthError(caught, signup));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="page auth-page">
      <div class="card">
        <h1>{signup ? "Create your account" : "Sign in"}</h1>
        <p class="muted">
          {signup
            ? "An account links your runners to you. Only you can open terminals on them."
            : "Reach the terminal on your own machine from this browser."}
        </p>
        <form onSubmit={submit} class="form" aria-describedby={error ? "auth-error" : undefined}>
          <label for="auth-email">Email</label>
          <input
            id="auth-email"
            name="email"
            type="email"
            autocomplete="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
          <label for="auth-password">Password</label>
          <input
            id="auth-password"
            name="password"
            type="password"
            autocomplete={signup ? "new-password" : "current-password"}
            required
            minLength={signup ? MIN_PASSWORD_LENGTH : undefined}
            aria-describedby={signup ? "password-hint" : undefined}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          {signup && <p id="password-hint" class="hint">At least {MIN_PASSWORD_LENGTH} characters.</p>}
          {error && <p id="auth-error" class="error-text" role="alert">{error}</p>}
          <button type="submit" class="button primary" disabled={busy}>
            {busy ? "Please wait…" : signup ? "Sign up" : "Sign in"}
          </button>
        </form>
        <p class="muted switch-auth">
          {signup ? "Already have an account? " : "New here? "}
          <Link href={otherHref}>{signup ? "Sign in" : "Create an account"}</Link>
        </p>
      </div>
    </section>
  );
}

function describeAuthError(error: unknown, signup: boolean): string {
  if (!(error instanceof ApiError)) return "Something went wrong. Try again.";
  if (error.status === 409) return "An account with this email already exists. Sign in instead.";
  if (error.status === 401) return "Wrong email or password.";
  if (error.status === 429) return "Too many attempts. Wait a few minutes and try again.";
  if (error.status === 403 && signup) return error.message || "Sign-ups are closed on this server.";
  return error.message;
}
