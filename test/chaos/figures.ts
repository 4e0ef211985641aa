import type { ChaosResult } from "./chaos-run.js";

/** The chaos run's figures as a short text table, for the test log and bench/chaos. */
export function formatFigures({ figures: f, report: r }: ChaosResult): string {
  const restarts = f.restarts
    .map((x, i) => `#${i + 1}: down ${x.downMs} ms, first job completed ${x.firstCompletionMs === undefined ? "never" : `${x.firstCompletionMs} ms`} after ready`)
    .join("; ");
  const lines = [
    `jobs            ${r.jobs} (${Object.entries(r.byStatus).map(([k, v]) => `${k.toLowerCase()} ${v}`).join(", ")}), created over ${f.createRetries} create retries`,
    `outputs         ${r.outputsChecked} checked byte for byte; ${r.storeFiles} files in the store, ${r.orphanFiles.length} referenced by no job`,
    `worker kills    ${f.workerKills} (kill -9; sd-cli still running right after in ${f.orphanedEngines}), SIGSTOP past the TTL ${f.stops}`,
    `studio kills    ${f.studioKills} (${restarts || "none"})`,
    ...(f.pgRestarts.length > 0
      ? [
          `db restarts     ${f.pgRestarts.length} (${f.pgRestarts
            .map((x, i) => `#${i + 1}: replicas ready ${x.downMs} ms after the stop, first job completed ${x.firstCompletionMs === undefined ? "never" : `${x.firstCompletionMs} ms`} after`)
            .join("; ")})`,
        ]
      : []),
    `leases          ${f.offers} offers, ${f.leaseExpiries} lease expiries, ${f.jobRetries} retries (metrics); ${r.extraAttempts} extra attempts (database)`,
    `settle          ${f.settleMs} ms after the chaos stopped; whole run ${(f.elapsedMs / 1000).toFixed(1)} s`,
    `recovery        ${f.workDirsReused} replacements on a killed worker's work dir: ${f.recoveredEntries} leftovers removed, ${f.recoveredGroups} engine groups killed`,
    `leftovers       ${f.workDirsLeftByKilledWorkers} job dirs left by killed workers that were never replaced; sd file GETs ${f.sdFileGets}`,
  ];
  return lines.join("\n");
}
