// The player: chapters jump the audio; the transcript follows it, cue by cue and, where the cue
// sheet has word timings, word by word. Keyboard: chapters are buttons; cues are clickable too.
(function () {
  "use strict";
  var audio = document.getElementById("audio");
  if (!audio) { return; }
  var chapters = Array.prototype.slice.call(document.querySelectorAll(".chapter"));
  var cues = Array.prototype.slice.call(document.querySelectorAll(".cue"));
  var cueTimes = cues.map(function (c) { return [parseFloat(c.dataset.start), parseFloat(c.dataset.end)]; });
  var currentCue = -1, currentWord = null, currentChapter = -1;

  function seek(seconds) {
    audio.currentTime = seconds;
    var playing = audio.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  }
  chapters.forEach(function (button) {
    button.addEventListener("click", function () { seek(parseFloat(button.dataset.start)); });
  });
  cues.forEach(function (cue) {
    cue.addEventListener("click", function () { seek(parseFloat(cue.dataset.start)); });
  });

  // The last cue that starts at or before t (cues are in time order), if t is inside it.
  function cueAt(t) {
    var lo = 0, hi = cueTimes.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (cueTimes[mid][0] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found >= 0 && t < cueTimes[found][1] ? found : -1;
  }

  function follow() {
    var t = audio.currentTime;
    var i = cueAt(t);
    if (i !== currentCue) {
      if (currentCue >= 0) { cues[currentCue].classList.remove("now"); cues[currentCue].removeAttribute("aria-current"); }
      currentCue = i;
      if (i >= 0) {
        cues[i].classList.add("now");
        cues[i].setAttribute("aria-current", "true");
        var list = cues[i].parentNode, top = cues[i].offsetTop - list.offsetTop;
        if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - cues[i].offsetHeight) {
          list.scrollTop = Math.max(0, top - list.clientHeight / 3);
        }
      }
    }
    var word = null;
    if (i >= 0) {
      var words = cues[i].querySelectorAll(".word");
      for (var w = 0; w < words.length; w++) {
        if (parseFloat(words[w].dataset.start) <= t && t < parseFloat(words[w].dataset.end)) { word = words[w]; break; }
      }
    }
    if (word !== currentWord) {
      if (currentWord) { currentWord.classList.remove("now"); }
      if (word) { word.classList.add("now"); }
      currentWord = word;
    }
    var c = -1;
    chapters.forEach(function (button, n) { if (parseFloat(button.dataset.start) <= t) { c = n; } });
    if (c !== currentChapter) {
      if (currentChapter >= 0) { chapters[currentChapter].removeAttribute("aria-current"); }
      if (c >= 0) { chapters[c].setAttribute("aria-current", "true"); }
      currentChapter = c;
    }
  }
  var frame = null;
  function tick() { follow(); frame = audio.paused ? null : window.requestAnimationFrame(tick); }
  audio.addEventListener("play", function () { if (!frame) { frame = window.requestAnimationFrame(tick); } });
  audio.addEventListener("timeupdate", follow);
  audio.addEventListener("seeked", follow);
})();
