// Large files go up with tus (resumable, in chunks) through the vendored
// tus-js-client (window.tus, loaded by index.html). It retries after network
// errors by itself, and remembers each upload's URL in localStorage by the
// file's name, type, size and modification time: after a reload, choosing
// the same file again resumes where it stopped.

import { api, freshToken, ApiError } from './api.js';
import { speedMeter } from './speed.js';

const CHUNK_BYTES = 8 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];

/** The size from which the page uses tus (FRAMEFLOW_PAGE_TUS_THRESHOLD_BYTES). */
export function tusThreshold() {
  const meta = document.querySelector('meta[name="frameflow-tus-threshold"]');
  const value = Number(meta ? meta.content : NaN);
  return Number.isFinite(value) ? value : Infinity;
}

export function tusAvailable() {
  return typeof window.tus !== 'undefined' && window.tus.isSupported;
}

function errorOf(err) {
  const response = err && err.originalResponse;
  if (!response) return new ApiError(0, 'network', 'The connection was lost');
  let body = {};
  try {
    body = JSON.parse(response.getBody() || '{}').error || {};
  } catch {
    // not JSON
  }
  const status = response.getStatus();
  return new ApiError(status, body.code || 'http_error', body.message || `Upload failed (${status})`, body.field);
}

/**
 * Same contract as upload.js's startUpload: {promise, cancel}; the promise
 * resolves with the video (with its `jobs`). Cancel terminates the upload on
 * the server (its bytes and quota are released).
 */
export function startTusUpload(
  file,
  { process = [], preset = '', onProgress = () => {}, onResume = () => {} } = {},
) {
  let upload = null;
  let canceled = false;
  let meter = speedMeter();

  const promise = new Promise((resolve, reject) => {
    const metadata = { filename: file.name, filetype: file.type || 'application/octet-stream' };
    if (process.length) metadata.process = process.join(',');
    if (preset) metadata.preset = preset;
    upload = new window.tus.Upload(file, {
      endpoint: '/api/v1/tus/',
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      metadata,
      removeFingerprintOnSuccess: true,
      async onBeforeRequest(req) {
        const token = await freshToken();
        if (token) req.setHeader('Authorization', `Bearer ${token}`);
      },
      onShouldRetry(err) {
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        // 401: onBeforeRequest fetches a fresh token for the next try.
        return !canceled && (!status || status >= 500 || [401, 409, 423].includes(status));
      },
      onProgress(sent, total) {
        onProgress(meter(sent, total));
      },
      onError(err) {
        reject(canceled ? new ApiError(0, 'canceled', 'Canceled') : errorOf(err));
      },
      async onSuccess(payload) {
        try {
          const id = payload.lastResponse.getHeader('Frameflow-Video-Id');
          const video = await api(`/api/v1/videos/${id}`);
          const jobs = await api(`/api/v1/jobs?video_id=${id}`);
          resolve({ ...video, jobs: jobs.items });
        } catch (err) {
          reject(err);
        }
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (canceled) return;
      if (previous.length) {
        // The newest attempt at this very file: carry on where it stopped.
        previous.sort((a, b) => (a.creationTime < b.creationTime ? 1 : -1));
        upload.resumeFromPreviousUpload(previous[0]);
        onResume();
      }
      upload.start();
    }, reject);
  });

  return {
    promise,
    cancel() {
      canceled = true;
      if (upload) upload.abort(true).catch(() => {}); // true: DELETE it on the server
    },
  };
}
