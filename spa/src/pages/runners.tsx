/**
 * `/devmode/runners`: the user's runners with an online indicator and last
 * seen, rename, mark as default, revoke (with confirmation), and how to get
 * one when there are none.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, formatAgo, type Runner } from "../api.ts";
import type { PageProps } from "../app.tsx";
import { Link } from "../router.tsx";
import { showToast } from "../toasts.tsx";

/** The runners page. */
export function RunnersPage(_props: PageProps): JSX.Element {
  const [runners, setRunners] = useState<Runner[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    try {
      setRunners(await api.runners());
      setError(null);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : "Could not load your runners.");
    }
  };

  useEffect(() => {
    void load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, []);

  return (
    <section class="page">
      <div class="page-head">
        <h1>Runners</h1>
        <Link href="/devmode/pair" class="button primary">Pair a runner</Link>
      </div>
      {error && <p class="error-text" role="alert">{error}</p>}
      {runners === null && !error && <p class="loading" aria-busy="true">Loading…</p>}
      {runners?.length === 0 && <NoRunners />}
      {runners && runners.length > 0 && (
        <ul class="runner-list" aria-label="Your runners">
          {runners.map((runner) => <RunnerRow key={runner.runnerId} runner={runner} onChange={load} />)}
        </ul>
      )}
    </section>
  );
}

function NoRunners(): JSX.Element {
  return (
    <div class="card empty">
      <h2>No runners yet</h2>
      <p>A runner is a small program on your own machine that opens the terminals you use here.</p>
      <ol class="steps">
        <li>
          Download the runner (<code>coda-runner</code>) for your machine, or run it from source with{" "}
          <code>deno task runner</code>.
        </li>
        <li>
          Run <code>coda-runner</code>. It prints a pairing code like <code>K7QD-M2XP</code>.
        </li>
        <li>
          Enter the code on <Link href="/devmode/pair">Pair a runner</Link> and approve it.
        </li>
      </ol>
    </div>
  );
}

function RunnerRow(props: { runner: Runner; onChange: () => Promise<void> }): JSX.Element {
  const { runner } = props;
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(runner.name);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const nameInput = useRef<HTMLInputElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (editing) nameInput.current?.focus();
  }, [editing]);
  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);

  const rename = async (event: Event) => {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed) return;
    setBusy(true);
    try {
      await api.renameRunner(runner.runnerId, trimmed);
      setEditing(false);
      await props.onChange();
    } catch (caught) {
      showToast(caught instanceof ApiError ? caught.message : "Rename failed.", "error");
    } finally {
      setBusy(false);
    }
  };

  const toggleDefault = async () => {
    setBusy(true);
    try {
      await api.setDefaultRunner(runner.runnerId, !runner.isDefault);
      await props.onChange();
    } catch (caught) {
      showToast(
        caught instanceof ApiError ? caught.message : "Could not change the default runner.",
        "error",
      );
    } finally {
      setBusy(false);
    }
  };

  const revoke = async () => {
    setBusy(true);
    try {
      await api.revokeRunner(runner.runnerId);
      showToast(`${runner.name} was revoked. Its terminals are closed.`);
      await props.onChange();
    } catch (caught) {
      showToast(caught instanceof ApiError ? caught.message : "Revoke failed.", "error");
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };

  return (
    <li class="runner card" data-runner-id={runner.runnerId}>
      <div class="runner-main">
        <span
          class={`dot ${runner.online ? "online" : "offline"}`}
          role="img"
          aria-label={runner.online ? "online" : "offline"}
        />
        {editing
          ? (
            <form class="inline-form" onSubmit={rename}>
              <label class="visually-hidden" for={`name-${runner.runnerId}`}>Runner name</label>
              <input
                id={`name-${runner.runnerId}`}
                ref={nameInput}
                value={name}
                maxLength={100}
                onInput={(e) => setName(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === "Escape") setEditing(false);
                }}
              />
              <button type="submit" class="button small primary" disabled={busy}>Save</button>
              <button type="button" class="button small ghost" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </form>
          )
          : <h2 class="runner-name">{runner.name}</h2>}
        <span class={`badge ${runner.online ? "badge-ok" : ""}`}>{runner.online ? "Online" : "Offline"}</span>
        {runner.isDefault && <span class="badge">Default</span>}
      </div>
      <p class="runner-meta muted">
        {[runner.hostname, runner.os].filter(Boolean).join(" · ")} · last seen{" "}
        {runner.online ? "now" : formatAgo(runner.lastSeenAt)}
      </p>
      {confirming
        ? (
          <div class="confirm" role="alertdialog" aria-labelledby={`revoke-${runner.runnerId}`}>
            <p id={`revoke-${runner.runnerId}`}>
              Revoke{" "}
              <strong>{runner.name}</strong>? Its open terminals close at once and it must be paired again.
            </p>
            <button
              type="button"
              ref={confirmButton}
              class="button danger small"
              onClick={revoke}
              disabled={busy}
            >
              Yes, revoke
            </button>
            <button type="button" class="button ghost small" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </div>
        )
        : (
          <div class="actions">
            <Link
              href={`/devmode/terminal?runner=${encodeURIComponent(runner.runnerId)}`}
              class="button small"
            >
              Open terminal
            </Link>
            <button
              type="button"
              class="button small ghost"
              onClick={() => {
                setName(runner.name);
                setEditing(true);
              }}
            >
              Rename
            </button>
            <button
              type="button"
              class="button small ghost"
              onClick={toggleDefault}
              disabled={busy}
              aria-pressed={runner.isDefault}
            >
              {runner.isDefault ? "Unset default" : "Make default"}
            </button>
            <button type="button" class="button small ghost danger-text" onClick={() => setConfirming(true)}>
              Revoke
            </button>
          </div>
        )}
    </li>
  );
}
