// The import page: while a preview or an apply runs (a large file takes a while), say so and
// keep the button from being pressed twice. The form works without this script.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const status = form.dataset.progress && document.getElementById(form.dataset.progress);
  if (!status) return;
  status.hidden = false;
  form.querySelectorAll("button[type=submit]").forEach((button) => { button.disabled = true; });
});
