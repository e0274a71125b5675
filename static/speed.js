// Upload speed and time left, smoothed so the numbers do not jump with every event.

const SMOOTHING = 0.3;

/** meter(loaded, total) → {loaded, total, speed, remaining}, for onProgress callbacks. */
export function speedMeter(startedAt = 0) {
  let lastTime = performance.now();
  let lastLoaded = startedAt;
  let speed = 0;
  return (loaded, total) => {
    const now = performance.now();
    const dt = (now - lastTime) / 1000;
    if (dt > 0.05) {
      const sample = (loaded - lastLoaded) / dt;
      speed = speed ? speed + SMOOTHING * (sample - speed) : sample;
      lastTime = now;
      lastLoaded = loaded;
    }
    return { loaded, total, speed, remaining: speed > 0 ? (total - loaded) / speed : NaN };
  };
}
