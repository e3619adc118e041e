/**
 * `/devmode/recordings`: recorded sessions, played back in the page with
 * their timing (speed control), or downloaded as `.cast` files.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, formatTime, type Recording } from "../api.ts";
import type { PageProps } from "../app.tsx";
import { currentTheme } from "../theme.ts";
import { CastPlayer, parseAsciicast } from "../terminal/asciicast.ts";
import { createTerminal, terminalPalette } from "../terminal/xterm_setup.ts";
import { terminalSettings } from "../terminal/settings.ts";

/** The recordings page. */
export function RecordingsPage(_props: PageProps): JSX.Element {
  const [recordings, setRecordings] = useState<Recording[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [playing, setPlaying] = useState<string | null>(null);

  useEffect(() => {
    api.recordings().then(setRecordings, (caught) => {
      setError(caught instanceof ApiError ? caught.message : "Could not load your recordings.");
    });
  }, []);

  return (
    <section class="page">
      <h1>Recordings</h1>
      {error && <p class="error-text" role="alert">{error}</p>}
      {recordings === null && !error && <p class="loading" aria-busy="true">Loading…</p>}
      {recordings?.length === 0 && (
        <div class="card empty">
          <p>
            No recordings yet. In a terminal, press{" "}
            <strong>Record</strong>; the runner then mirrors the session's output here.
          </p>
        </div>
      )}
      {playing && <Player key={playing} sessionId={playing} onClose={() => setPlaying(null)} />}
      {recordings && recordings.length > 0 && (
        <ul class="recording-list" aria-label="Recorded sessions">
          {recordings.map((recording) => (
            <li key={recording.sessionId} class="card recording" data-session-id={recording.sessionId}>
              <div>
                <h2>{recording.ideaId || "Session"}</h2>
                <p class="muted">
                  <code>{recording.sessionId}</code> · {formatTime(recording.startedAt)}
                  {recording.bytes ? ` · ${Math.ceil(recording.bytes / 1024)} KiB` : ""}
                </p>
              </div>
              <div class="actions">
                <button
                  type="button"
                  class="button small primary"
                  onClick={() =>
                    setPlaying(recording.sessionId)}
                >
                  Play
                </button>
                <a
                  class="button small ghost"
                  href={`/api/devmode/logs/${encodeURIComponent(recording.sessionId)}`}
                  download={`${recording.sessionId}.cast`}
                >
                  Download .cast
                </a>
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

const SPEEDS = [0.5, 1, 2, 4, 8];

function Player(props: { sessionId: string; onClose: () => void }): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const player = useRef<CastPlayer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [state, setState] = useState({ playing: false, position: 0, total: 0 });
  const [speed, setSpeed] = useState(1);

  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    api.recording(props.sessionId).then((text) => {
      if (disposed) return;
      const cast = parseAsciicast(text);
      const settings = terminalSettings();
      const terminal = createTerminal(host.current!, {
        theme: terminalPalette(settings, currentTheme()),
        settings,
        readOnly: true,
        webgl: false,
        cols: cast.header.width,
        rows: cast.header.height,
      });
      const castPlayer = new CastPlayer(cast, {
        write: (data) => terminal.term.write(data),
        reset: () => terminal.term.reset(),
        onProgress: (position, total) =>
          setState({ playing: castPlayer.playing || !castPlayer.finished, position, total }),
        onEnd: () => setState((s) => ({ ...s, playing: false })),
      });
      player.current = castPlayer;
      setState({ playing: true, position: 0, total: castPlayer.total });
      castPlayer.play();
      cleanup = () => {
        castPlayer.dispose();
        terminal.dispose();
      };
    }).catch((caught) => {
      if (!disposed) setError(caught instanceof Error ? caught.message : String(caught));
    });
    return () => {
      disposed = true;
      cleanup();
      player.current = null;
    };
  }, [props.sessionId]);

  const toggle = () => {
    const current = player.current;
    if (!current) return;
    if (current.playing) {
      current.pause();
      setState((s) => ({ ...s, playing: false }));
    } else {
      current.play();
      setState((s) => ({ ...s, playing: true }));
    }
  };

  return (
    <div class="card player" aria-label={`Playback of ${props.sessionId}`} role="region">
      <div class="player-controls">
        <button type="button" class="button small primary" onClick={toggle} disabled={!player.current}>
          {state.playing ? "Pause" : "Play"}
        </button>
        <button type="button" class="button small ghost" onClick={() => player.current?.restart()}>
          Restart
        </button>
        <button type="button" class="button small ghost" onClick={() => player.current?.skipToEnd()}>
          Skip to end
        </button>
        <label for="speed-select">Speed</label>
        <select
          id="speed-select"
          value={speed}
          onChange={(e) => {
            const value = Number(e.currentTarget.value);
            setSpeed(value);
            player.current?.setSpeed(value);
          }}
        >
          {SPEEDS.map((s) => <option key={s} value={s}>{s}×</option>)}
        </select>
        <progress max={state.total || 1} value={state.position} aria-label="Playback position" />
        <span class="muted">{state.position.toFixed(1)} s / {state.total.toFixed(1)} s</span>
        <span class="toolbar-spacer" />
        <button type="button" class="button small ghost" onClick={props.onClose} aria-label="Close player">
          ×
        </button>
      </div>
      {error && <p class="error-text" role="alert">{error}</p>}
      <div class="player-host" ref={host} />
    </div>
  );
}
