/**
 * The worker's download manager: verified, resumable, parallel downloads into
 * a model cache shared by the worker processes of one host.
 */
export { DownloadManager, type CachedFile, type EnsureOptions } from "./download-manager.js";
export { DownloadError, type DownloadErrorKind } from "./errors.js";
export { isHuggingFaceHost, type DownloadManagerOptions, type DownloadLogger, type OpenFile, type WritableFile } from "./options.js";
export type { DownloadProgress } from "./progress.js";
export type { WorkDirLinks } from "./work-dir.js";
