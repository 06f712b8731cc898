//! Following a moved base: merging `origin/BASE_BRANCH` into a task branch as a merge commit
//! (never a rebase, so the PR's review threads stay anchored to its commits), and pushing such a
//! commit. A merge with conflicts is still built, locally, with each conflicted file holding
//! both sides between git's conflict markers, so that a revision can resolve them on top of it.

use git2::{MergeFileOptions, Oid};

use super::{AUTHOR_EMAIL, AUTHOR_NAME, GitError, Pushed, Repo, check_branch_name, tree};
use crate::task::FileChange;

/// What merging the base into a branch gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePreview {
    /// A local merge commit (parents: the branch's tip, then the base's) of the merged tree, in
    /// which every conflicted file holds both sides between conflict markers.
    pub commit: String,
    /// The base's tip merged (hex).
    pub base: String,
    /// The conflicted paths, sorted; empty for a clean merge.
    pub conflicts: Vec<String>,
}

/// The start of a conflict marker line, as git writes them.
pub const CONFLICT_MARKERS: [&str; 3] = ["<<<<<<< ", "=======", ">>>>>>> "];

/// True when `content` still holds a conflict marker line.
pub fn has_conflict_markers(content: &str) -> bool {
    content.lines().any(|line| {
        CONFLICT_MARKERS
            .iter()
            .any(|m| line.starts_with(m) || line == m.trim_end())
    })
}

impl Repo {
    /// Fetches the base and merges it into commit `head` (the tip of `branch`): `None` when
    /// `head` already contains the base; else a [`MergePreview`]. Only objects are written.
    ///
    /// Errors: as [`Repo::fetch_base`]; [`GitError::Conflict`] when a conflicted file is not
    /// UTF-8 text on both sides (a binary, a submodule, a deletion: nothing to resolve as
    /// text); [`GitError::Git`].
    pub fn merge_base_into(
        &self,
        head: &str,
        branch: &str,
    ) -> Result<Option<MergePreview>, GitError> {
        let base = Oid::from_str(&self.fetch_base()?)?;
        let ours = self.repo.find_commit(Oid::from_str(head)?)?;
        let theirs = self.repo.find_commit(base)?;
        if self.repo.merge_base(ours.id(), base)? == base {
            return Ok(None);
        }
        let mut index = self.repo.merge_commits(&ours, &theirs, None)?;
        let mut marked: Vec<FileChange> = Vec::new();
        if index.has_conflicts() {
            let conflicts: Vec<git2::IndexConflict> =
                index.conflicts()?.collect::<Result<_, _>>()?;
            for conflict in &conflicts {
                marked.push(self.marked(conflict, branch)?);
            }
            for file in &marked {
                index.remove_path(std::path::Path::new(&file.path))?;
            }
        }
        let merged = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        marked.sort_by(|a, b| a.path.cmp(&b.path));
        let tree_id = if marked.is_empty() {
            merged.id()
        } else {
            let modes = tree::plan(&merged, &marked)?;
            tree::build(&self.repo, &merged, &marked, &modes)?
        };
        let tree = self.repo.find_tree(tree_id)?;
        let signature = git2::Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)?;
        let message = format!("Merge {} into {branch}\n", self.base_branch);
        let commit = self.repo.commit(
            None,
            &signature,
            &signature,
            &message,
            &tree,
            &[&ours, &theirs],
        )?;
        Ok(Some(MergePreview {
            commit: commit.to_string(),
            base: base.to_string(),
            conflicts: marked.into_iter().map(|f| f.path).collect(),
        }))
    }

    /// A conflicted file with both sides between conflict markers: git's own hunks when the
    /// file has a common ancestor, else the two whole sides.
    fn marked(&self, conflict: &git2::IndexConflict, branch: &str) -> Result<FileChange, GitError> {
        let (Some(ours), Some(theirs)) = (&conflict.our, &conflict.their) else {
            let entry = conflict.our.as_ref().or(conflict.their.as_ref());
            let path = entry.map(|e| String::from_utf8_lossy(&e.path).into_owned());
            return Err(GitError::Conflict(format!(
                "{} is deleted on one side and changed on the other",
                path.unwrap_or_default()
            )));
        };
        let path = String::from_utf8_lossy(&ours.path).into_owned();
        let text = |id: Oid| -> Result<String, GitError> {
            let blob = self.repo.find_blob(id)?;
            String::from_utf8(blob.content().to_vec())
                .map_err(|_| GitError::Conflict(format!("{path} is not UTF-8 text")))
        };
        let ours_label = format!("{branch} (this pull request)");
        let theirs_label = format!("{} (the base)", self.base_branch);
        let content = match &conflict.ancestor {
            Some(ancestor) => {
                let mut options = MergeFileOptions::new();
                options.our_label(&ours_label).their_label(&theirs_label);
                let result =
                    self.repo
                        .merge_file_from_index(ancestor, ours, theirs, Some(&mut options))?;
                String::from_utf8(result.content().to_vec())
                    .map_err(|_| GitError::Conflict(format!("{path} is not UTF-8 text")))?
            }
            None => {
                let (mine, base) = (text(ours.id)?, text(theirs.id)?);
                let end = |s: &str| if s.ends_with('\n') { "" } else { "\n" };
                format!(
                    "<<<<<<< {ours_label}\n{mine}{}=======\n{base}{}>>>>>>> {theirs_label}\n",
                    end(&mine),
                    end(&base)
                )
            }
        };
        Ok(FileChange { path, content })
    }

    /// Pushes merge commit `commit` (a [`MergePreview`]'s) to `branch` as a fast-forward while
    /// the push remote's branch is still at `head`, its first parent; reused when the branch
    /// already has a commit with the same parents and tree (an earlier attempt pushed it).
    ///
    /// Errors: [`GitError::PushRejected`] when the branch moved; as [`Repo::push`].
    pub fn push_merge(&self, branch: &str, head: &str, commit: &str) -> Result<Pushed, GitError> {
        let head = Oid::from_str(head)?;
        let merge = self.repo.find_commit(Oid::from_str(commit)?)?;
        let parents: Vec<Oid> = merge.parent_ids().collect();
        self.push_on(branch, head, merge.tree_id(), &parents, || Ok(merge.id()))
    }

    /// A revision's commit of a conflicted merge: the pinned [`MergePreview`] commit's tree
    /// with `files` (the resolved files) written, as a merge commit with the preview's parents,
    /// pushed as a fast-forward of its first parent (the branch's tip).
    ///
    /// Errors: [`GitError::Conflict`] when a file still holds conflict markers; as
    /// [`Repo::push_merge`] and [`Repo::commit`].
    pub fn push_resolved_merge(
        &self,
        branch: &str,
        files: &[FileChange],
        message: &str,
    ) -> Result<Pushed, GitError> {
        if let Some(file) = files.iter().find(|f| has_conflict_markers(&f.content)) {
            return Err(GitError::Conflict(format!(
                "{} still holds conflict markers",
                file.path
            )));
        }
        let preview = self.base_commit()?;
        let parents: Vec<Oid> = preview.parent_ids().collect();
        let head = *parents
            .first()
            .ok_or_else(|| GitError::Conflict("the merge preview has no parent".into()))?;
        let planned = self.plan_tree(branch, files)?;
        let tree = self.repo.find_tree(planned.tree)?;
        self.push_on(branch, head, planned.tree, &parents, || {
            let parents: Vec<git2::Commit<'_>> = parents
                .iter()
                .map(|p| self.repo.find_commit(*p))
                .collect::<Result<_, _>>()?;
            let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
            let signature = git2::Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)?;
            Ok(self
                .repo
                .commit(None, &signature, &signature, message, &tree, &parents)?)
        })
    }

    /// Pushes the commit `make` builds (tree `tree`, parents `parents`) to `branch` as a
    /// fast-forward of `head` under a lease; an existing tip with that tree and those parents
    /// is reused instead.
    pub(super) fn push_on(
        &self,
        branch: &str,
        head: Oid,
        tree: Oid,
        parents: &[Oid],
        make: impl FnOnce() -> Result<Oid, GitError>,
    ) -> Result<Pushed, GitError> {
        check_branch_name(branch)?;
        self.check_not_checked_out(branch)?;
        let refname = format!("refs/heads/{branch}");
        let tip = self.remote_branch(branch)?;
        let moved = |now: &str| GitError::PushRejected {
            remote: self.push_remote().map(|r| r.1).unwrap_or_default(),
            refname: refname.clone(),
            message: format!("the branch is at {now}, not at {head} the merge was built on"),
        };
        match tip.as_deref() {
            Some(tip) if Oid::from_str(tip)? == head => {}
            Some(tip) => {
                let same = self.remote_commit(branch, tip)?.filter(|c| {
                    c.tree_id() == tree && c.parent_ids().collect::<Vec<_>>() == parents
                });
                return match same {
                    Some(commit) => {
                        self.set_local_branch(branch, commit.id())?;
                        Ok(Pushed {
                            branch: branch.to_string(),
                            commit: commit.id().to_string(),
                            reused: true,
                        })
                    }
                    None => Err(moved(tip)),
                };
            }
            None => return Err(moved("nothing (deleted)")),
        }
        let commit = make()?;
        self.set_local_branch(branch, commit)?;
        self.push_ref(&refname, Some(head), false)?;
        Ok(Pushed {
            branch: branch.to_string(),
            commit: commit.to_string(),
            reused: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conflict_markers_are_found_on_their_own_lines() {
        assert!(super::has_conflict_markers(
            "a\n<<<<<<< ours\nb\n=======\nc\n>>>>>>> theirs\n"
        ));
        assert!(super::has_conflict_markers("=======\n"));
        assert!(!super::has_conflict_markers("a ======= b\n<<<<<<<x\n"));
    }
}
