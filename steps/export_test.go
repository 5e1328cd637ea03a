package steps

// MaskPasswords is exported for the tests of package steps_test.
var MaskPasswords = maskPasswords

// PollDelay exposes pollDelay to tests.
var PollDelay = pollDelay
