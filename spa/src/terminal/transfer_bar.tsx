/**
 * The pane's file transfers, one row each under the toolbar: an upload's or download's progress
 * bar, a download offer with its name and size and Save / Dismiss (nothing is saved without the
 * click), where an upload went, and why one failed.
 *
 * @module
 */
import type { JSX } from "preact";
import type { Transfer } from "./file_transfers.ts";

/** Props of {@linkcode TransferBar}. */
export interface TransferBarProps {
  transfers: Transfer[];
  onAccept: (key: string) => void;
  onDismiss: (key: string) => void;
}

/** The rows of every transfer shown; nothing when there is none. */
export function TransferBar(props: TransferBarProps): JSX.Element | null {
  if (props.transfers.length === 0) return null;
  return (
    <div class="transfers" role="region" aria-label="File transfers">
      {props.transfers.map((transfer) => (
        <TransferRow
          key={transfer.key}
          transfer={transfer}
          onAccept={props.onAccept}
          onDismiss={props.onDismiss}
        />
      ))}
    </div>
  );
}

function TransferRow(
  props: { transfer: Transfer; onAccept: (key: string) => void; onDismiss: (key: string) => void },
): JSX.Element {
  const { transfer } = props;
  const verb = transfer.direction === "upload" ? "Upload" : "Download";
  const label = `${verb} of ${transfer.name}`;
  return (
    <div
      class={`transfer transfer-${transfer.status}`}
      role={transfer.status === "failed" ? "alert" : "status"}
    >
      <span class="transfer-name" title={transfer.name}>
        {transfer.direction === "upload" ? "↑" : "↓"} {transfer.name}
      </span>
      <span class="muted transfer-size">{formatSize(transfer.size)}</span>
      {transfer.status === "active" && (
        <progress aria-label={label} max={Math.max(1, transfer.size)} value={transfer.done} />
      )}
      <span class="transfer-detail">{describe(transfer)}</span>
      {transfer.status === "offered" && (
        <button
          type="button"
          class="button small primary"
          onClick={() => props.onAccept(transfer.key)}
        >
          Save
        </button>
      )}
      <button
        type="button"
        class="button small ghost"
        aria-label={transfer.status === "active" ? `Cancel ${label}` : `Dismiss ${label}`}
        onClick={() => props.onDismiss(transfer.key)}
      >
        {transfer.status === "active" ? "Cancel" : "Dismiss"}
      </button>
    </div>
  );
}

function describe(transfer: Transfer): string {
  switch (transfer.status) {
    case "offered":
      return "offered by coda-download in the terminal";
    case "active":
      return `${Math.floor((transfer.done / Math.max(1, transfer.size)) * 100)} %`;
    case "done":
      return transfer.direction === "upload" ? `Uploaded to ${transfer.detail}` : "Downloaded";
    case "failed":
      return `${transfer.direction === "upload" ? "Upload" : "Download"} failed: ${transfer.detail}`;
  }
}

/** `bytes` for people. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
