// Wires the page together: the session, the panels and the live feed.
// Each module owns its part of the DOM; this one only decides who tells whom.

import { api, login, logout, onAuthChange, register, restoreSession } from './api.js';
import { $, formatBytes, announce } from './dom.js';
import {
  applyJobEvent, applySnapshot, clearJobs, initJobs, loadJobs, pollActive, refreshVideoNames, removeJobsOfVideo, upsertJob,
} from './jobs.js';
import { startLive } from './live.js';
import { hidePlayer, initPlayer, renderOutputs, showVideo, shownVideoId } from './player.js';
import { cancelAllUploads, initUploads, showOperationChoices } from './upload.js';
import {
  addVideo, clearVideos, getVideo, initVideos, loadVideos, markSelected, removeVideo, setThumbnail, showResults,
  shownIds, syncSelection, updateVideo, videoName,
} from './videos.js';
import { clearSelection, forgetSelected, initSelection } from './selection.js';
import { clearBatches, initBatches, openBatchDialog } from './batch.js';
import { bindPresetSelect, clearPresets, enterPresets, initPresets } from './presets.js';
import { initDetails } from './details.js';
import { initSearch, resetSearch } from './search.js';
import { hideAdminConsole, showAdminConsole } from './admin.js';
import { hideSecurityEvents, showSecurityEvents } from './security-events.js';
import { accountEntered, accountLeft, initAccount } from './account.js';
import { clearImages, imagesChanged, initImages, loadImages, removeImage } from './images.js';
import { applyGenerationEvent, clearGenerate, enterGenerate, initGenerate } from './generate.js';

let stopLive = null;
let quotaTimer = null;

async function updateQuota() {
  try {
    const me = await api('/api/v1/me');
    const quota = $('#quota');
    quota.max = me.quota_bytes || 1;
    quota.value = Math.min(me.used_bytes, quota.max);
    $('#quota-text').textContent = `${formatBytes(me.used_bytes)} of ${formatBytes(me.quota_bytes)}`;
    $('#user-email').textContent = me.email;
  } catch {
    // Shown again on the next change; not worth an error on its own.
  }
}

// Uploads, finished jobs and deletes all move the quota; several at once
// cost one request.
function quotaSoon() {
  clearTimeout(quotaTimer);
  quotaTimer = setTimeout(updateQuota, 300);
}

function onLiveEvent(event) {
  if (event.type.startsWith('job.')) {
    applyJobEvent(event);
  } else if (event.type.startsWith('generation.')) {
    applyGenerationEvent(event);
  } else if (event.type === 'video.ready' && event.video) {
    addVideo(event.video);
    if (event.video.kind === 'image') imagesChanged();
    refreshVideoNames();
    quotaSoon();
  } else if (event.type === 'video.deleted') {
    forgetVideo(event.video_id);
  }
}

function forgetVideo(id) {
  forgetSelected(id);
  removeVideo(id);
  removeImage(id);
  removeJobsOfVideo(id);
  if (shownVideoId() === id) hidePlayer();
  quotaSoon();
}

async function openVideo(id) {
  const video = getVideo(id);
  if (!video) return;
  markSelected(id);
  await showVideo(video);
}

async function enter() {
  $('#auth').hidden = true;
  $('#app').hidden = false;
  $('#account').hidden = false;
  accountEntered();
  updateQuota();
  showOperationChoices();
  enterPresets();
  enterGenerate();
  try {
    // Videos first: job rows show their video's name.
    await loadVideos();
    await loadJobs();
    await loadImages();
  } catch (err) {
    announce(`Could not load your videos: ${err.message}`);
  }
  stopLive = startLive({ onEvent: onLiveEvent, onSnapshot: applySnapshot, poll: pollActive });
  showSecurityEvents($('#security-events')).catch(() => {});
  showAdminConsole($('#admin-console')).catch((err) => announce(`Could not load the admin console: ${err.message}`));
}

function leave() {
  if (stopLive) stopLive();
  stopLive = null;
  cancelAllUploads();
  hidePlayer();
  clearJobs();
  clearBatches();
  clearSelection();
  clearVideos();
  clearPresets();
  clearImages();
  resetSearch();
  hideSecurityEvents($('#security-events'));
  hideAdminConsole($('#admin-console'));
  accountLeft();
  clearGenerate();
  $('#app').hidden = true;
  $('#account').hidden = true;
  $('#auth').hidden = false;
  $('#password').value = '';
  $('#email').focus();
}

function authForm() {
  const form = $('#auth-form');
  const error = $('#auth-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = $('#email').value.trim();
    const password = $('#password').value;
    error.textContent = '';
    if (!email || !password) {
      error.textContent = 'Enter your email and a password.';
      return;
    }
    const creating = event.submitter && event.submitter.id === 'register-btn';
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => (b.disabled = true));
    try {
      // Sign-up answers alike for a new and a taken address; logging in tells.
      if (creating) await register(email, password);
      await login(email, password); // onAuthChange → enter()
    } catch (err) {
      error.textContent = creating && err.code === 'invalid_credentials'
        ? 'If this address already has an account, its owner has been emailed. Log in with its password, or use "Forgot password?".'
        : err.message;
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
  $('#logout').addEventListener('click', () => logout());
}

function liveIndicator() {
  // data-live is set by live.js; mirror it in words for people too.
  const words = { ws: 'Live', polling: 'Updating every 2 s', off: '' };
  const show = () => {
    $('#live-state').textContent = words[document.documentElement.dataset.live] || '';
  };
  new MutationObserver(show).observe(document.documentElement, { attributeFilter: ['data-live'] });
  show();
}

async function main() {
  initJobs($('#jobs'), $('#jobs-empty'), {
    videoName,
    onFinished: quotaSoon,
    // Outputs (signed links) arrive with the job's full JSON, after the event.
    onOutputs(job) {
      if (job.video_id === shownVideoId()) renderOutputs();
      // A thumbnail job finished (the automatic one after upload, or a batch's): the card shows it.
      const thumb = job.operation === 'thumbnail' && (job.outputs || []).find((o) => o.name === 'thumbnail.jpg');
      if (thumb) setThumbnail(job.video_id, thumb.url);
    },
  });
  initVideos($('#videos'), $('#videos-empty'), openVideo, $('#view-toggle'));
  initSelection(
    { selectAll: $('#select-all'), count: $('#selection-count'), clear: $('#select-clear'), run: $('#batch-open') },
    { visibleIds: shownIds, onChange: syncSelection, onRun: openBatchDialog },
  );
  initBatches({ dialog: $('#batch-dialog'), list: $('#batches') }, { onQueued: () => {} });
  initPresets($('#presets-panel'));
  bindPresetSelect($('#upload-preset'));
  initImages({ list: $('#images'), empty: $('#images-empty') }, openVideo);
  initGenerate($('#generate-panel'));
  initSearch(
    {
      form: $('#search-form'),
      input: $('#search-q'),
      sort: $('#search-sort'),
      suggestions: $('#search-suggestions'),
      facets: $('#search-facets'),
    },
    showResults,
  );
  initDetails((video) => {
    updateVideo(video);
    const heading = $('#player-title');
    if (heading) heading.textContent = video.title;
  });
  initPlayer($('#player'), {
    onDeleted: forgetVideo,
    onJobCreated: () => {},
  });
  initUploads(
    { form: $('#upload-form'), input: $('#file-input'), dropZone: $('#drop-zone'), list: $('#uploads') },
    {
      onUploaded(video) {
        addVideo(video);
        if (video.kind === 'image') imagesChanged();
        quotaSoon();
      },
      onJobs(jobs) {
        for (const job of jobs) upsertJob(job);
      },
    },
  );
  authForm();
  initAccount(); // follows a mailed /#verify= or /#reset= link
  liveIndicator();
  onAuthChange((loggedIn) => (loggedIn ? enter() : leave()));
  if (!(await restoreSession())) leave();
}

main();
