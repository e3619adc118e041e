/**
 * `/devmode/pair` ("Enable Dev Mode"): enter the runner's code, see what it
 * would authorize, approve, then see the runner come online.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { CODE_LENGTH, formatCode, normalizeCode, PAIRING_TTL_MS } from "@coda/api/pairing-code";
import { api, ApiError, formatTime, type PairInfo } from "../api.ts";
import type { PageProps } from "../app.tsx";
import { Link } from "../router.tsx";

const CODE_MINUTES = PAIRING_TTL_MS / 60_000;

function describePairError(error: unknown): string {
  if (!(error instanceof ApiError)) return "Something went wrong. Try again.";
  switch (error.status) {
    case 400:
      return `That does not look like a pairing code. Codes have ${CODE_LENGTH} letters and digits, like K7QD-M2XP.`;
    case 404:
      return `That code is wrong or has expired. Check the code your runner shows; codes last ${CODE_MINUTES} minutes.`;
    case 409:
      return "This code was already approved. Start the runner again for a new code if it is not paired.";
    case 429:
      return "Too many wrong codes. Wait up to 10 minutes before trying again.";
    case 401:
      return "Your sign-in expired. Sign in again.";
    default:
      return error.message;
  }
}

type Step =
  | { kind: "enter" }
  | { kind: "confirm"; code: string; info: PairInfo }
  | { kind: "done"; runnerId: string; info: PairInfo };

/** The pairing page. */
export function PairPage(props: PageProps): JSX.Element {
  const linked = props.query.get("code") ?? "";
  const [code, setCode] = useState(() => {
    const plain = normalizeCode(linked);
    return plain ? formatCode(plain) : linked;
  });
  const fromLink = linked.trim() !== "";
  const [step, setStep] = useState<Step>({ kind: "enter" });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);

  const lookUpCode = async (entered: string) => {
    setError(null);
    setNotice(null);
    const plain = normalizeCode(entered);
    if (plain === null) {
      setError(`Enter the ${CODE_LENGTH}-character code your runner shows, like K7QD-M2XP.`);
      return;
    }
    setBusy(true);
    try {
      setStep({ kind: "confirm", code: plain, info: await api.pairInfo(plain) });
    } catch (caught) {
      setError(describePairError(caught));
    } finally {
      setBusy(false);
    }
  };

  const lookUp = (event: Event) => {
    event.preventDefault();
    void lookUpCode(code);
  };

  // Cancel refuses the code in the app, so the runner stops at its next poll instead of waiting it out.
  const deny = async () => {
    if (step.kind !== "confirm") return;
    setError(null);
    setBusy(true);
    try {
      await api.pairDeny(step.code);
      setStep({ kind: "enter" });
      setNotice("Denied. The runner was told and stopped asking; nothing was paired.");
    } catch (caught) {
      setError(describePairError(caught));
    } finally {
      setBusy(false);
    }
  };

  const approve = async () => {
    if (step.kind !== "confirm") return;
    setError(null);
    setBusy(true);
    try {
      const result = await api.pairApprove(step.code);
      setStep({ kind: "done", runnerId: result.runnerId, info: step.info });
    } catch (caught) {
      setError(describePairError(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="page narrow">
      <h1>Enable Dev Mode</h1>
      {step.kind === "enter" && (
        <div class="card">
          {notice && <p class="notice" role="status" data-testid="pair-denied">{notice}</p>}
          {fromLink
            ? (
              // A link fills the code in but never looks it up: every look-up of a wrong code spends one of
              // the account's few attempts, and any site can link here.
              <p>
                Check that this is the code your <code>coda-runner</code> shows, then continue.
              </p>
            )
            : (
              <p>
                Start <code>coda-runner</code>{" "}
                on the machine you want to reach. It shows a code; enter it here.
              </p>
            )}
          <form class="form" onSubmit={lookUp}>
            <label for="pair-code">Pairing code</label>
            <input
              id="pair-code"
              name="code"
              class="code-input"
              autocomplete="off"
              autocapitalize="characters"
              spellcheck={false}
              placeholder="XXXX-XXXX"
              maxLength={12}
              required
              aria-describedby={error ? "pair-error" : undefined}
              value={code}
              onInput={(e) => setCode(e.currentTarget.value)}
            />
            {error && <p id="pair-error" class="error-text" role="alert">{error}</p>}
            <button type="submit" class="button primary" disabled={busy}>
              {busy ? "Checking…" : "Continue"}
            </button>
          </form>
        </div>
      )}
      {step.kind === "confirm" && (
        <div class="card">
          <h2>Approve this runner?</h2>
          <p>
            Approving lets the runner below open terminals for your account.{" "}
            <strong>Only approve a runner you started yourself just now.</strong>
          </p>
          {!step.info.sameAddress && (
            // A phishing link carries a code its sender started on their own machine; the address it came
            // from is the one thing the sender cannot make look like the user's.
            <p class="notice" role="alert" data-testid="pair-address-warning">
              <strong>
                This request came from a different address ({step.info.ip || "unknown"}) than this browser.
              </strong>{" "}
              That is expected if the runner is on another network (a server, a VM). If you did not just start
              {" "}
              <code>coda-runner</code>{" "}
              there yourself — say, someone sent you this link — do not approve: whoever started it would get
              terminals on your account.
            </p>
          )}
          <RunnerFacts code={step.code} info={step.info} />
          {error && <p class="error-text" role="alert">{error}</p>}
          <div class="actions">
            <button type="button" class="button primary" onClick={approve} disabled={busy}>
              {busy ? "Approving…" : "Approve"}
            </button>
            <button type="button" class="button ghost" onClick={deny} disabled={busy}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {step.kind === "done" && <PairDone runnerId={step.runnerId} info={step.info} />}
    </section>
  );
}

function RunnerFacts(props: { code: string; info: PairInfo }): JSX.Element {
  const { info } = props;
  return (
    <dl class="facts">
      <dt>Code</dt>
      <dd>
        <code>{formatCode(props.code)}</code>
      </dd>
      <dt>Name</dt>
      <dd>{info.name || "—"}</dd>
      <dt>Hostname</dt>
      <dd>{info.hostname || "—"}</dd>
      <dt>Operating system</dt>
      <dd>{info.os || "—"}</dd>
      <dt>Requested from IP</dt>
      <dd>{info.ip || "—"}</dd>
      <dt>Requested at</dt>
      <dd>{formatTime(info.requestedAt)}</dd>
    </dl>
  );
}

function PairDone(props: { runnerId: string; info: PairInfo }): JSX.Element {
  const [online, setOnline] = useState(false);
  useEffect(() => {
    let stopped = false;
    const poll = async () => {
      try {
        const runners = await api.runners();
        if (!stopped) setOnline(runners.some((r) => r.runnerId === props.runnerId && r.online));
      } catch {
        // Shown as "connecting" until the next poll; nothing to report.
      }
    };
    void poll();
    const timer = setInterval(poll, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [props.runnerId]);
  return (
    <div class="card success" role="status">
      <h2>Runner paired</h2>
      <p>
        <strong>{props.info.name || props.info.hostname || "Your runner"}</strong>{" "}
        is linked to your account. It stores its token and reconnects by itself from now on; you will not need
        a code again on this machine.
      </p>
      <p class="runner-state">
        <span class={`dot ${online ? "online" : "offline"}`} aria-hidden="true" />
        {online ? "Online — ready for terminals." : "Waiting for the runner to connect…"}
      </p>
      <div class="actions">
        <Link href="/devmode/terminal" class="button primary">Open a terminal</Link>
        <Link href="/devmode/runners" class="button ghost">See your runners</Link>
      </div>
    </div>
  );
}
