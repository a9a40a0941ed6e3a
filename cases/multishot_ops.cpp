// In progress (issue #19/#18): scenarios land here in the following commits.
